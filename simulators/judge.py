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
        # Each calibration prompt runs in a call of its own, so its scores do not depend on which other
        # prompts happened to be uncached in this call. A resumed RL run also restores the cache itself
        # (calibration_state), so it repeats the uninterrupted run's computations exactly.
        for prefix, missing in extra.items():
            ordered = sorted(missing)
            for option, value in zip(ordered, self.backend.score_options([prefix], [ordered])[0]):
                self._baseline[(prefix, option)] = value
        scored = self.backend.score_options(prompts, [texts[i] for i in explained]) if prompts else []
        baseline = [[self._baseline.get((bare[i], o)) for o in texts[i]] for i in range(len(questions))]
        raw = list(baseline)
        for i, values in zip(explained, scored):
            raw[i] = values
        if self.cfg.calibration == "pmi":
            scores = [calibrate(r, b) for r, b in zip(raw, baseline)]
        else:
            scores = raw
        probs = [softmax(s, self.cfg.temperature) for s in scores]
        return JudgeAnswers(probs=probs, scores=scores, raw=raw)

    def calibration_state(self) -> list[list]:
        """The cached no-explanation scores, as JSON-ready rows (saved with RL checkpoints)."""
        return [[prefix, option, value] for (prefix, option), value in self._baseline.items()]

    def load_calibration_state(self, rows: list[list]) -> None:
        self._baseline = {(prefix, option): float(value) for prefix, option, value in rows}

    def close(self) -> None:
        self.backend.close()
