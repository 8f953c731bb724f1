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
        prompts = [self.prompt(q, e) for q, e in zip(questions, explanations)]
        texts = [[option_text(self.template, o) for o in opts] for opts in options]
        bare = [self.prompt(q, None) for q in questions]
        # One backend call for the explained prompts and any calibration prompts not seen before.
        extra = {}
        if self.cfg.calibration == "pmi":
            for prefix, opts in zip(bare, texts):
                missing = [o for o in opts if (prefix, o) not in self._baseline]
                if missing:
                    extra.setdefault(prefix, set()).update(missing)
        extra_prefixes = list(extra)
        extra_options = [sorted(extra[p]) for p in extra_prefixes]
        scored = self.backend.score_options(prompts + extra_prefixes, texts + extra_options)
        for prefix, opts, values in zip(extra_prefixes, extra_options, scored[len(prompts):]):
            for option, value in zip(opts, values):
                self._baseline[(prefix, option)] = value
        raw = scored[: len(prompts)]
        if self.cfg.calibration == "pmi":
            scores = [calibrate(r, [self._baseline[(p, o)] for o in opts]) for r, p, opts in zip(raw, bare, texts)]
        else:
            scores = raw
        probs = [softmax(s, self.cfg.temperature) for s in scores]
        return JudgeAnswers(probs=probs, scores=scores, raw=raw)

    def close(self) -> None:
        self.backend.close()
