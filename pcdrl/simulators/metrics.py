"""Pure functions from option scores to judge answers and their grades."""
from __future__ import annotations

import math

TIE_TOLERANCE = 1e-6


def softmax(scores: list[float], temperature: float = 1.0) -> list[float]:
    top = max(scores)
    weights = [math.exp((s - top) / temperature) for s in scores]
    total = sum(weights)
    return [w / total for w in weights]


def calibrate(raw: list[float], baseline: list[float]) -> list[float]:
    """PMI: how much the explanation raised each option's log-likelihood over the no-explanation prompt."""
    return [r - b for r, b in zip(raw, baseline)]


def top_options(scores: list[float]) -> list[int]:
    """The options that score highest, ties (within TIE_TOLERANCE) included."""
    top = max(scores)
    return [i for i, s in enumerate(scores) if s >= top - TIE_TOLERANCE]


def expected_accuracy(scores: list[float], answer: int) -> float:
    """1 if the true option alone scores highest; 1/t if it ties with t-1 others (a random tie-break)."""
    tied = top_options(scores)
    return 1.0 / len(tied) if answer in tied else 0.0


def correct_logprob(probs: list[float], answer: int) -> float:
    return math.log(max(probs[answer], 1e-12))


def brier(probs: list[float], answer: int) -> float:
    """Multi-class Brier score (lower is better): squared distance from the one-hot truth."""
    return sum((p - (1.0 if i == answer else 0.0)) ** 2 for i, p in enumerate(probs))
