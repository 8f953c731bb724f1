"""The simulated human: a frozen LM that answers behaviour questions from an explanation alone.

Each option is scored by its log-likelihood after the judge prompt. With `pmi` calibration the
score is that log-likelihood minus the option's log-likelihood after the same prompt *without*
the explanation, so a small LM's taste for short or common answers ("No") cancels out and only
what the explanation adds remains. The no-explanation scores depend only on (question, option),
so they are computed once and cached for the judge's lifetime.

`answer(..., only=...)` scores one option per row (the true one, for rewards that need nothing
else): fewer option tokens per explanation, and the same score, bit for bit on CPU, as that option
gets when every option is scored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from pcdrl.models.backends import Backend, make_backend
from pcdrl.simulators.config import JudgeConfig
from pcdrl.simulators.metrics import calibrate, softmax
from pcdrl.simulators.render import Explanation, judge_prompt, load_template, option_text


class DuplicateOptionsError(ValueError):
    pass


@dataclass
class JudgeAnswers:
    probs: list[list[float]]
    """Per item, a probability per option (softmax of the scores); NaN in rows where not every option was scored."""
    scores: list[list[float]]
    """Calibrated scores (PMI), or raw log-likelihoods with calibration `none`; NaN for options not scored."""
    raw: list[list[float]]
    """Option log-likelihoods after the prompt with the explanation; NaN for options not scored."""
    only: list[int] | None = None
    """The one option scored per row, when `answer` was asked for one (None: every option was scored)."""

    def complete(self, row: int) -> bool:
        """Whether every option of this row was scored (so its probabilities mean something)."""
        return not any(math.isnan(x) for x in self.scores[row])


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
               explanations: list[Explanation | None], only: list[int] | None = None) -> JudgeAnswers:
        """Score every option of every row; with ``only``, just option ``only[row]`` of each explained row (the
        others are NaN, and so are that row's probabilities)."""
        if not len(questions) == len(options) == len(explanations):
            raise ValueError(f"{len(questions)} questions, {len(options)} option lists, {len(explanations)} explanations")
        for row, opts in enumerate(options):
            if len(set(opts)) != len(opts):
                raise DuplicateOptionsError(f"item {row}: duplicate options {opts}; the judge cannot tell them apart")
        if only is not None:
            if len(only) != len(questions):
                raise ValueError(f"only: {len(only)} option indices for {len(questions)} questions")
            bad = [(row, j) for row, j in enumerate(only) if not 0 <= j < len(options[row])]
            if bad:
                raise ValueError(f"only: option indices out of range (row, index): {bad[:5]}")
        texts = [[option_text(self.template, o) for o in opts] for opts in options]
        bare = [self.prompt(q, None) for q in questions]
        # Rows without an explanation *are* the calibration prompt: their raw scores are the baseline,
        # so their calibrated scores are exactly zero (a uniform prior), whatever the batch looks like.
        explained = [i for i, e in enumerate(explanations) if e is not None]
        prompts = [self.prompt(questions[i], explanations[i]) for i in explained]
        # The baseline covers every option even when only one is scored: the cache, and so a resumed run's
        # calibration state, is then the same whichever scoring the rewards asked for.
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
        asked = [texts[i] if only is None else [texts[i][only[i]]] for i in explained]
        scored = self.backend.score_options(prompts, asked) if prompts else []
        baseline = [[self._baseline.get((bare[i], o)) for o in texts[i]] for i in range(len(questions))]
        raw = list(baseline)
        for i, values in zip(explained, scored):
            if only is None:
                raw[i] = values
            else:
                raw[i] = [math.nan] * len(texts[i])
                raw[i][only[i]] = values[0]
        if self.cfg.calibration == "pmi":
            scores = [calibrate(r, b) for r, b in zip(raw, baseline)]
        else:
            scores = raw
        probs = [softmax(s, self.cfg.temperature) if not any(math.isnan(x) for x in s) else [math.nan] * len(s)
                 for s in scores]
        return JudgeAnswers(probs=probs, scores=scores, raw=raw, only=only)

    def calibration_state(self) -> list[list]:
        """The cached no-explanation scores, as JSON-ready rows (saved with RL checkpoints)."""
        return [[prefix, option, value] for (prefix, option), value in self._baseline.items()]

    def load_calibration_state(self, rows: list[list]) -> None:
        self._baseline = {(prefix, option): float(value) for prefix, option, value in rows}

    def close(self) -> None:
        self.backend.close()
