"""The simulated human: a frozen LM that answers behaviour questions from an explanation alone.

Each option is scored by its log-likelihood after the judge prompt. With `pmi` calibration the
score is that log-likelihood minus the option's log-likelihood after the same prompt *without*
the explanation, so a small LM's taste for short or common answers ("No") cancels out and only
what the explanation adds remains. The no-explanation scores depend only on (question, option),
so they are computed once and cached for the judge's lifetime.
"""
from __future__ import annotations

from dataclasses import dataclass

from models.backends import Backend, make_backend
from simulators.config import JudgeConfig
from simulators.metrics import calibrate, softmax
from simulators.render import Explanation, judge_prompt, load_template, option_text


class DuplicateOptionsError(ValueError):
    pass


@dataclass
class JudgeAnswers:
    probs: list[list[float]]
    """Per item, a probability per option (softmax of the scores)."""
    scores: list[list[float]]
    """Calibrated scores (PMI), or raw log-likelihoods with calibration `none`."""
    raw: list[list[float]]
    """Option log-likelihoods after the prompt with the explanation."""


class Judge:
    def __init__(self, cfg: JudgeConfig, backend: Backend | None = None):
        self.cfg = cfg
        self.template = load_template(cfg.template, cfg.persona, cfg.templates_file)
        self.backend = backend if backend is not None else make_backend(cfg.backend)
        self._baseline: dict[tuple[str, str], float] = {}

    @property
    def name(self) -> str:
        return self.cfg.name

    def prompt(self, question: str, explanation: Explanation | None) -> str:
        return judge_prompt(self.template, question, explanation, self.cfg.max_labels)

    def answer(self, questions: list[str], options: list[list[str]],
               explanations: list[Explanation | None]) -> JudgeAnswers:
        if not len(questions) == len(options) == len(explanations):
            raise ValueError(f"{len(questions)} questions, {len(options)} option lists, {len(explanations)} explanations")
        for row, opts in enumerate(options):
            if len(set(opts)) != len(opts):
                raise DuplicateOptionsError(f"item {row}: duplicate options {opts}; the judge cannot tell them apart")
        texts = [[option_text(self.template, o) for o in opts] for opts in options]
        bare = [self.prompt(q, None) for q in questions]
        # Rows without an explanation *are* the calibration prompt: their raw scores are the baseline,
        # so their calibrated scores are exactly zero (a uniform prior), whatever the batch looks like.
        explained = [i for i, e in enumerate(explanations) if e is not None]
        prompts = [self.prompt(questions[i], explanations[i]) for i in explained]
        needs_baseline = range(len(questions)) if self.cfg.calibration == "pmi" else \
            [i for i, e in enumerate(explanations) if e is None]
        extra: dict[str, set[str]] = {}
        for i in needs_baseline:
            missing = [o for o in texts[i] if (bare[i], o) not in self._baseline]
            if missing:
                extra.setdefault(bare[i], set()).update(missing)
        extra_prefixes = list(extra)
        extra_options = [sorted(extra[p]) for p in extra_prefixes]
        # One backend call for the explained prompts and any calibration prompts not seen before.
        scored = self.backend.score_options(prompts + extra_prefixes, [texts[i] for i in explained] + extra_options)
        for prefix, opts, values in zip(extra_prefixes, extra_options, scored[len(prompts):]):
            for option, value in zip(opts, values):
                self._baseline[(prefix, option)] = value
        baseline = [[self._baseline.get((bare[i], o)) for o in texts[i]] for i in range(len(questions))]
        raw = list(baseline)
        for i, values in zip(explained, scored[: len(prompts)]):
            raw[i] = values
        if self.cfg.calibration == "pmi":
            scores = [calibrate(r, b) for r, b in zip(raw, baseline)]
        else:
            scores = raw
        probs = [softmax(s, self.cfg.temperature) for s in scores]
        return JudgeAnswers(probs=probs, scores=scores, raw=raw)

    def close(self) -> None:
        self.backend.close()
