"""Small statistics used across the project: AUROC, Pearson, bootstrap confidence intervals."""
from __future__ import annotations

import torch


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


def bootstrap_ci(values: torch.Tensor, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean, resampling items."""
    values = values[~values.isnan()]
    if len(values) == 0:
        return float("nan"), float("nan")
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(values), (n_resamples, len(values)), generator=generator)
    means = values[idx].mean(1)
    return means.quantile(0.025).item(), means.quantile(0.975).item()
