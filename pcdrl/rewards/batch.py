"""What a reward term may read: one row per sampled explanation.

Terms are pure functions of this batch; the trainer fills in what the active terms need (the
judge's answers always; activations for `fidelity`; the decoder's loss for `grounding`; for formulas, their
size and truth). When
every active term reads only the true option's score, the judge scores only that option and
`judge_probs` is None (a softmax needs every option).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RewardBatch:
    judge_probs: list[list[float]] | None
    """Per row, the judge's probability for each option; None when the judge scored only the true options."""
    answers: list[int]
    """Per row, the index of S's true option."""
    concepts: list[list[int]]
    """Per row, the concept ids the policy chose (empty for no explanation)."""
    concept_logits: torch.Tensor | None = None
    """[N, m] the encoder's pooled pre-activations for the row's item (for `fidelity`)."""
    top_k_active: int = 16
    """How many concepts count as "really active" for `fidelity` (the PCD's k)."""
    grounding_loss: torch.Tensor | None = None
    """[N] the PCD decoder's loss on S's actual output given only the chosen concepts (for `grounding`)."""
    judge_true_scores: list[float] | None = None
    """Per row, the judge's calibrated score of the true option (JudgeAnswers.scores[row][answer])."""
    judge_calibration: str = "pmi"
    """How `judge_true_scores` were calibrated: `pmi` (minus the no-explanation score) or `none` (raw)."""
    explanation_size: list[int] | None = None
    """Per row, the explanation's size: the number of concepts of a set, the number of literals of a formula
    (repeats counted). None: the length of each row's `concepts`."""
    formula_true: list[bool] | None = None
    """Per row, whether the formula is true on the row's item (the encoder's per-position top-k); None for
    concept sets, which make no claim beyond naming concepts."""

    def __len__(self) -> int:
        return len(self.answers)
