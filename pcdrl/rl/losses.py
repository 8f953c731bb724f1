"""GRPO and PPO objectives as pure functions of tensors.

A concept set is a sequence of K picks; each pick's Plackett–Luce log-prob plays the part of a
token's log-prob, so the three aggregations below differ as they do for text:
- `grpo`: mean over each sample's picks, then over samples (DeepSeekMath);
- `dr_grpo`: sum over picks divided by a constant (samples × max picks), no length bias (Dr. GRPO);
- `dapo`: mean over all picks in the batch (DAPO's token-level loss).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

EPS = 1e-6
LOSS_TYPES = ("grpo", "dr_grpo", "dapo")
SCALES = ("group", "batch", "none")


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group") -> torch.Tensor:
    """Rewards [N] (N = items × group_size, groups contiguous) -> advantages: reward minus its group's mean,
    divided by the group's std (`group`), the batch's std (`batch`), or nothing (`none`, as Dr. GRPO)."""
    if scale not in SCALES:
        raise ValueError(f"advantage scale '{scale}' is unknown; choose one of {', '.join(SCALES)}")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)
    centered = grouped - grouped.mean(1, keepdim=True)
    if scale == "group":
        centered = centered / (grouped.std(1, unbiased=False, keepdim=True) + EPS)
    elif scale == "batch":
        centered = centered / (rewards.std(unbiased=False) + EPS)
    return centered.reshape(-1)


@dataclass
class LossStats:
    loss: torch.Tensor
    clip_fraction: float
    kl: float


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str = "grpo",
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    kl: torch.Tensor | None = None,
    beta: float = 0.0,
) -> LossStats:
    """The clipped surrogate over picks [N, K], plus β·KL per pick, aggregated per ``loss_type``. ``advantages``
    is one per sample [N] (GRPO, PPO on concept sets) or one per pick [N, K] (token-level PPO on formulas)."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type '{loss_type}' is unknown; choose one of {', '.join(LOSS_TYPES)}")
    ratio = torch.exp(logprobs - old_logprobs)
    if advantages.shape not in (logprobs.shape[:1], logprobs.shape):  # a mismatch would broadcast silently
        raise ValueError(f"advantages must be one per sample {tuple(logprobs.shape[:1])} or one per pick "
                         f"{tuple(logprobs.shape)}, got {tuple(advantages.shape)}")
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high) * adv
    per_pick = -torch.minimum(unclipped, clipped)
    if kl is not None and beta:
        per_pick = per_pick + beta * kl
    mask = mask.to(per_pick.dtype)
    if loss_type == "grpo":
        loss = ((per_pick * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    elif loss_type == "dr_grpo":
        loss = (per_pick * mask).sum() / (mask.shape[0] * mask.shape[1])
    else:
        loss = (per_pick * mask).sum() / mask.sum().clamp(min=1)
    was_clipped = ((unclipped - clipped).abs() > 1e-8).to(mask.dtype)
    return LossStats(
        loss=loss,
        clip_fraction=((was_clipped * mask).sum() / mask.sum().clamp(min=1)).item(),
        kl=0.0 if kl is None else ((kl.detach() * mask).sum() / mask.sum().clamp(min=1)).item(),
    )


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       clip: float = 0.2) -> torch.Tensor:
    """PPO's value loss: the worse of the new prediction and one kept within ``clip`` of the old."""
    kept = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * torch.maximum((values - returns) ** 2, (kept - returns) ** 2).mean()


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over [N, T] steps; ``values`` is [N, T+1] (bootstrap last).

    A single-step episode (T = 1, terminal) gives advantage r − V(s), the concept-set case; the
    formula policy's multi-step episodes use the same function.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        alive = mask[:, t].to(rewards.dtype)
        next_alive = mask[:, t + 1].to(rewards.dtype) if t + 1 < rewards.shape[1] else torch.zeros_like(alive)
        delta = rewards[:, t] + gamma * values[:, t + 1] * next_alive - values[:, t]
        running = (delta + gamma * lam * next_alive * running) * alive
        advantages[:, t] = running
    return advantages, advantages + values[:, :-1]
