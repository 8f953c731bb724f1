"""Small statistics used across the project: AUROC, Pearson, and the one bootstrap.

The bootstrap lives here, at the lowest package that needs it, so that pcd (labels, pretraining, fidelity)
and evaluation (judge-eval, eval) all import the same function.
"""
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


def bootstrap_mean(values: torch.Tensor, resamples: int = 2000, seed: int = 0,
                   digits: int | None = 4) -> tuple[float, list[float]]:
    """The mean and its 95% percentile interval, rounded to ``digits`` places (None: as computed).

    ``values`` [items] resamples items; NaNs (a concept that could not be scored) are left out, and none
    left gives NaN. ``values`` [runs, items] resamples runs, then items: one item resample is shared by the
    drawn runs, which keeps items paired across seeds, as they are. That interval covers both the item-to-item
    noise and the seed-to-seed spread. A [1, items] matrix still draws its (only) run, so its interval is
    a different draw from the same items as a vector: `pcdrl eval` passes matrices, its quoted numbers rely on it.
    """
    values = torch.as_tensor(values, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    if values.ndim == 1:
        values = values[~values.isnan()]
        if len(values) == 0:
            return float("nan"), [float("nan"), float("nan")]
        means = values[torch.randint(len(values), (resamples, len(values)), generator=generator)].mean(1)
    else:
        runs, items = values.shape
        run_idx = torch.randint(runs, (resamples, runs), generator=generator)
        item_idx = torch.randint(items, (resamples, items), generator=generator)
        means = values[run_idx[:, :, None], item_idx[:, None, :]].mean(dim=(1, 2))
    mean, low, high = values.mean().item(), means.quantile(0.025).item(), means.quantile(0.975).item()
    if digits is not None:
        mean, low, high = round(mean, digits), round(low, digits), round(high, digits)
    return mean, [low, high]


def bootstrap_ci(values: torch.Tensor, resamples: int = 2000, seed: int = 0) -> list[float]:
    """The 95% interval of `bootstrap_mean` alone, unrounded, for summaries that report the mean themselves."""
    return bootstrap_mean(values, resamples, seed, digits=None)[1]
