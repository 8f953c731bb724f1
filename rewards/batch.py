"""What a reward term may read: one row per sampled explanation.

Terms are pure functions of this batch; the trainer fills in what the active terms need (the
judge's answers always; activations for `fidelity`; the decoder's loss for `grounding`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RewardBatch:
    judge_probs: list[list[float]]
    """Per row, the judge's probability for each option."""
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

    def __len__(self) -> int:
        return len(self.answers)
