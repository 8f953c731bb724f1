"""Sampling K distinct concepts from pooled encoder logits: Gumbel-top-k and its Plackett–Luce log-prob.

Adding Gumbel noise to logits/T and keeping the K largest draws K items without replacement from
the Plackett–Luce model, in the order the perturbed values rank them, so

    log π(c_1..c_K) = Σ_j [ z_{c_j} − logsumexp_{c ∉ {c_1..c_{j-1}}} z_c ],   z = logits / T.

The log-prob is exact and differentiable in the logits; greedy evaluation is plain top-k.
"""
from __future__ import annotations

import torch


def gumbel_top_k(logits: torch.Tensor, k: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """[N, m] logits -> [N, k] distinct concept ids, in sampled order."""
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"k={k} must be between 1 and the number of concepts ({logits.shape[-1]})")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    uniform = torch.rand(logits.shape, generator=generator, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
    gumbel = -torch.log(-torch.log(uniform))
    perturbed = logits.detach().double() / temperature + gumbel.to(logits.device)
    return perturbed.topk(k, dim=-1).indices


def greedy_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    return logits.detach().topk(k, dim=-1).indices


def plackett_luce_step_logprobs(logits: torch.Tensor, chosen: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per pick: log p(c_j | c_1..c_{j-1}) -> [N, k]. The picks play the part of tokens in GRPO's losses."""
    z = logits.float() / temperature
    taken = torch.zeros_like(z, dtype=torch.bool)
    steps = []
    for j in range(chosen.shape[1]):
        remaining = z.masked_fill(taken, float("-inf"))
        picked = chosen[:, j : j + 1]
        steps.append(z.gather(1, picked).squeeze(1) - torch.logsumexp(remaining, dim=-1))
        taken = taken.scatter(1, picked, True)
    return torch.stack(steps, dim=1)


def plackett_luce_logprob(logits: torch.Tensor, chosen: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log-probability of drawing ``chosen`` [N, k] in that order from logits [N, m] -> [N]."""
    return plackett_luce_step_logprobs(logits, chosen, temperature).sum(1)
