"""The built-in reward terms. Each maps a `RewardBatch` to one float per row; higher is better."""
from __future__ import annotations

import math

import torch

from rewards.batch import RewardBatch


def judge_correct(batch: RewardBatch) -> torch.Tensor:
    """1 when the judge's most probable option is S's true one; ties share the point."""
    values = []
    for probs, answer in zip(batch.judge_probs, batch.answers):
        top = max(probs)
        tied = [i for i, p in enumerate(probs) if p >= top - 1e-9]
        values.append(1.0 / len(tied) if answer in tied else 0.0)
    return torch.tensor(values)


def judge_logprob(batch: RewardBatch) -> torch.Tensor:
    """log p_judge(true option): dense, so near-misses still earn signal."""
    return torch.tensor([math.log(max(p[a], 1e-12)) for p, a in zip(batch.judge_probs, batch.answers)])


def brier(batch: RewardBatch) -> torch.Tensor:
    """Minus the multi-class Brier score: 0 for a certain, correct judge; -2 for a certain, wrong one."""
    return torch.tensor([
        -sum((p - (1.0 if i == a else 0.0)) ** 2 for i, p in enumerate(probs))
        for probs, a in zip(batch.judge_probs, batch.answers)
    ])


def sparsity(batch: RewardBatch) -> torch.Tensor:
    """Minus the number of concepts shown: shorter explanations are easier to read."""
    return torch.tensor([-float(len(c)) for c in batch.concepts])


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


def grounding(batch: RewardBatch) -> torch.Tensor:
    """Minus the PCD decoder's loss on S's actual output given only the chosen concepts."""
    if batch.grounding_loss is None:
        raise ValueError("reward 'grounding' needs the batch's grounding_loss (the PCD decoder's loss per row)")
    return -batch.grounding_loss.detach().float()


BUILTIN = {f.__name__: f for f in (judge_correct, judge_logprob, brier, sparsity, fidelity, grounding)}
