"""Auto-interp scoring: can a simulator LM, reading only a label, tell where the concept fires?

For each concept, the simulator sees held-out contexts: the concept's strongest firings and
random contexts where it is silent. Two ways to ask it, both calibrated by subtracting the
same prompt without a description (so a context that is easy anyway earns nothing):

- ``likelihood`` (default): log p(marked token | description, text before it). A label helps
  exactly when it makes the words the concept fires on more predictable: a pointwise mutual
  information, robust for small LMs that follow instructions poorly.
- ``yes_no``: log p(Yes) - log p(No) for "does the marked word match the description?".

The score is detection AUROC per concept (and the Pearson correlation with the true
activation), averaged over concepts.
"""
from __future__ import annotations

import random

import torch

SIMULATOR_TEMPLATE = (
    "A feature of a language model is described as: {label}\n"
    "Text: {context}\n"
    "Question: does the word in [[double brackets]] match the description? Answer Yes or No.\n"
    "Answer:"
)
NO_LABEL = "(no description given)"
LIKELIHOOD_TEMPLATE = "Words described as: {label}\nText: {before}"


def simulator_prompt(label: str, context: str) -> str:
    return SIMULATOR_TEMPLATE.format(label=label, context=context)


def likelihood_prompt(label: str, before: str) -> str:
    return LIKELIHOOD_TEMPLATE.format(label=label, before=before)


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).float().mean()
    ties = (pos[:, None] == neg[None, :]).float().mean()
    return (greater + 0.5 * ties).item()


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.float() - x.float().mean(), y.float() - y.float().mean()
    denom = x.norm() * y.norm()
    return (x @ y / denom).item() if denom > 0 else float("nan")


def derangement(n: int, seed: int) -> list[int]:
    """A permutation with no fixed point: every concept gets another concept's label."""
    if n < 2:
        raise ValueError("the shuffled-label control needs at least 2 labelled concepts")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [order[(order.index(i) + 1) % n] for i in range(n)]


def bootstrap_ci(values: torch.Tensor, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean, resampling items."""
    values = values[~values.isnan()]
    if len(values) == 0:
        return float("nan"), float("nan")
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(values), (n_resamples, len(values)), generator=generator)
    means = values[idx].mean(1)
    return means.quantile(0.025).item(), means.quantile(0.975).item()
