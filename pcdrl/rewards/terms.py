"""The built-in reward terms. Each maps a `RewardBatch` to one float per row; higher is better.

Each term declares which batch fields it reads (`@reads`), so the rollout can ask the judge for
no more than the active terms need: when none reads `judge_probs`, only the true option is scored.
"""
from __future__ import annotations

import math

import torch

from pcdrl.rewards.batch import RewardBatch

ALL_FIELDS = frozenset({"judge_probs", "judge_true_scores", "concept_logits", "grounding_loss", "explanation_size",
                        "formula_true"})
"""What a term without a declaration (a plugin) is assumed to read: everything."""


def reads(*fields: str):
    """Mark a term with the `RewardBatch` fields it reads (besides answers and concepts, always there)."""
    unknown = set(fields) - ALL_FIELDS
    if unknown:
        raise ValueError(f"reads: unknown RewardBatch fields {sorted(unknown)}; known: {sorted(ALL_FIELDS)}")

    def mark(function):
        function.reads = frozenset(fields)
        return function

    return mark


def term_reads(function) -> frozenset[str]:
    return getattr(function, "reads", ALL_FIELDS)


def _probs(batch: RewardBatch, name: str) -> list[list[float]]:
    if batch.judge_probs is None:
        raise ValueError(
            f"reward '{name}' needs the judge's probability for every option, but this batch scored only the true "
            "option of each row (true-only scoring); score every option (Judge.answer without only=)")
    return batch.judge_probs


@reads("judge_probs")
def judge_correct(batch: RewardBatch) -> torch.Tensor:
    """1 when the judge's most probable option is S's true one; ties share the point."""
    values = []
    for probs, answer in zip(_probs(batch, "judge_correct"), batch.answers):
        top = max(probs)
        tied = [i for i, p in enumerate(probs) if p >= top - 1e-9]
        values.append(1.0 / len(tied) if answer in tied else 0.0)
    return torch.tensor(values)


@reads("judge_probs")
def judge_logprob(batch: RewardBatch) -> torch.Tensor:
    """log p_judge(true option): dense, so near-misses still earn signal."""
    return torch.tensor([math.log(max(p[a], 1e-12)) for p, a in zip(_probs(batch, "judge_logprob"), batch.answers)])


@reads("judge_probs")
def brier(batch: RewardBatch) -> torch.Tensor:
    """Minus the multi-class Brier score: 0 for a certain, correct judge; -2 for a certain, wrong one."""
    return torch.tensor([
        -sum((p - (1.0 if i == a else 0.0)) ** 2 for i, p in enumerate(probs))
        for probs, a in zip(_probs(batch, "brier"), batch.answers)
    ])


@reads("judge_true_scores")
def judge_true_pmi(batch: RewardBatch) -> torch.Tensor:
    """log p(true option | explanation) − log p(true option | no explanation): what the explanation adds to the
    true option alone. Unlike `judge_logprob` it needs no distractor, so the judge can score one option per row,
    and the distractors' noise does not reach the reward."""
    if batch.judge_true_scores is None:
        raise ValueError("reward 'judge_true_pmi' needs the batch's judge_true_scores (the true option's calibrated "
                         "score per row)")
    if batch.judge_calibration != "pmi":
        raise ValueError(f"reward 'judge_true_pmi' needs PMI-calibrated judge scores, got calibration "
                         f"'{batch.judge_calibration}' (raw log-likelihoods have no no-explanation baseline)")
    return torch.tensor(batch.judge_true_scores, dtype=torch.float64)


@reads("explanation_size")
def sparsity(batch: RewardBatch) -> torch.Tensor:
    """Minus the explanation's size (concepts in a set, literals in a formula): shorter ones are easier to read."""
    sizes = batch.explanation_size if batch.explanation_size is not None else [len(c) for c in batch.concepts]
    return torch.tensor([-float(n) for n in sizes])


@reads("formula_true")
def truth(batch: RewardBatch) -> torch.Tensor:
    """1 when the formula is true on its item (every literal checked against the encoder's per-position top-k),
    else 0: what teaches truth when the policy samples without the truth mask (formula.truth=reward)."""
    if batch.formula_true is None:
        raise ValueError("reward 'truth' needs the batch's formula_true (whether each formula is true on its "
                         "item); it scores formulas, so train with policy.kind=formulas")
    return torch.tensor([1.0 if t else 0.0 for t in batch.formula_true])


@reads("concept_logits")
def fidelity(batch: RewardBatch) -> torch.Tensor:
    """Share of the chosen concepts that are among the item's top-k active ones: the explanation stays true."""
    if batch.concept_logits is None:
        raise ValueError("reward 'fidelity' needs the batch's concept_logits (the encoder's pooled pre-activations)")
    top = batch.concept_logits.topk(batch.top_k_active, dim=-1).indices
    values = []
    for row, chosen in enumerate(batch.concepts):
        active = set(top[row].tolist())
        values.append(sum(c in active for c in chosen) / len(chosen) if chosen else 0.0)
    return torch.tensor(values)


@reads("grounding_loss")
def grounding(batch: RewardBatch) -> torch.Tensor:
    """Minus the PCD decoder's loss on S's actual output given only the chosen concepts."""
    if batch.grounding_loss is None:
        raise ValueError("reward 'grounding' needs the batch's grounding_loss (the PCD decoder's loss per row)")
    return -batch.grounding_loss.detach().float()


BUILTIN = {f.__name__: f for f in (judge_correct, judge_logprob, brier, judge_true_pmi, sparsity, truth, fidelity,
                                   grounding)}
