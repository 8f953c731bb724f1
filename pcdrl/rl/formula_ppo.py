"""Token-level PPO with GAE on formulas (`algorithm: ppo` with `policy.kind: formulas`).

An episode is one formula, and its steps are the formula's *decision* tokens (`FormulaRollout.decisions`). A
forced token (`)` once the literal budget is spent, END) has probability 1 under every policy: it is part of the
environment's transition to the next decision, not an action, so it gets no step, no advantage and no loss. The
reward is terminal: it lands on the last decision step, and the value after that step is 0 (nothing the policy
does changes the formula afterwards).

    critic:     the policy's value head on its GRU state, V(prefix before token t) (`evaluate_tokens(...).values`),
                read at the decision tokens: the state in which each choice is made
    advantages: `losses.gae` over the decision steps compacted to the left, with ppo.gamma and ppo.lam, so that
                γ discounts choices and not grammar bookkeeping; whitened over the batch if ppo.normalize_advantages
    loss:       `losses.clipped_policy_loss` per decision token (ppo.loss_type, clips) + β·KL per token to the
                warm start, as GRPO on formulas, + ppo.value_coef × `losses.clipped_value_loss` on the same tokens
    μ:          ppo.updates_per_batch optimizer steps on each rollout

The value head reads the policy's GRU state, detached: the value loss trains the head alone, at ppo.value_lr
(`value_parameters`), and cannot move the policy that the clip is meant to bound. Rows whose reward is not finite
have no steps. On the CPU benchmark (docs/benchmarks.md, bench_formulas) the per-token KL to the warm start spiked
to ~1e4 on some steps, with the value head shared or detached: the μ=4 policy updates cause it, not the critic.
"""
from __future__ import annotations

import torch

from pcdrl.rl.formula_policy import FormulaPolicy, evaluate_tokens
from pcdrl.rl.formula_rollout import FormulaRollout, FormulaSetup
from pcdrl.rl.losses import clipped_policy_loss, clipped_value_loss, gae
from pcdrl.rl.policy import kl_estimate
from pcdrl.rl.train_config import RLTrainConfig


def value_parameters(policy: FormulaPolicy) -> list[torch.nn.Parameter]:
    """The value head's parameters: PPO gives them their own learning rate (ppo.value_lr)."""
    return list(policy.value_head.parameters())


def decision_gae(rewards: torch.Tensor, values: torch.Tensor, steps: torch.Tensor, gamma: float = 1.0,
                 lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns [N, T] on the decision tokens (0 elsewhere).

    ``rewards`` [N]: one terminal reward per formula; ``values`` [N, T]: V(prefix before token t); ``steps``
    [N, T] bool: the tokens that are steps (decisions of rows that count). Each row's steps are packed to the left
    so that `gae` sees consecutive steps; the reward goes on the last one, and the value after it is 0. A row with
    no step gets nothing."""
    n = rewards.shape[0]
    counts = steps.sum(1)
    width = int(counts.max()) if n else 0
    packed = torch.arange(width, device=steps.device).unsqueeze(0) < counts.unsqueeze(1)  # [N, D]
    packed_values = values.new_zeros(n, width + 1)  # the last column: the value after the last step, 0
    packed_values[:, :width][packed] = values[steps]  # row-major on both sides, so the order of steps is kept
    packed_rewards = rewards.new_zeros(n, width)
    ends = counts > 0
    packed_rewards[ends.nonzero().squeeze(1), counts[ends] - 1] = rewards[ends]
    advantages, returns = gae(packed_rewards, packed_values, packed, gamma, lam)
    out_adv, out_ret = values.new_zeros(values.shape), values.new_zeros(values.shape)
    out_adv[steps], out_ret[steps] = advantages[packed], returns[packed]
    return out_adv, out_ret


def formula_ppo_update(setup: FormulaSetup, optimizer, pooled_rows: torch.Tensor, out: FormulaRollout,
                       cfg: RLTrainConfig) -> dict:
    """μ PPO steps on one formula rollout (``pooled_rows`` [N, d]: each sample's item row)."""
    p, f, policy = cfg.ppo, cfg.formula, setup.policy

    def evaluate():
        return evaluate_tokens(policy, pooled_rows, out.tokens, f, setup.allowed, out.truth_mask, f.temperature)

    steps = out.decisions & out.reward.finite.unsqueeze(1)
    rewards = out.reward.total.float().nan_to_num(0.0)
    with torch.no_grad():
        old_values = evaluate().values
    advantages, returns = decision_gae(rewards, old_values, steps, p.gamma, p.lam)
    n_steps = int(steps.sum())
    if p.normalize_advantages and n_steps > 1:
        kept = advantages[steps]
        advantages = (advantages - kept.mean()) / (kept.std(unbiased=False) + 1e-6) * steps
    mask = steps.float()
    for _ in range(p.updates_per_batch):
        now = evaluate()
        kl = kl_estimate(now.logprobs, out.ref_logprobs, cfg.kl.estimator) if cfg.kl.beta else None
        stats = clipped_policy_loss(now.logprobs, out.old_logprobs, advantages, mask, p.loss_type, p.clip_low,
                                    p.clip_high, kl, cfg.kl.beta)
        value_loss = clipped_value_loss(now.values[steps], old_values[steps], returns[steps], p.value_clip) \
            if n_steps else now.values.sum() * 0.0
        optimizer.zero_grad(set_to_none=True)
        (stats.loss + p.value_coef * value_loss).backward()
        optimizer.step()
    kept_returns, kept_values = returns[steps], old_values[steps]
    explained = 1 - (kept_returns - kept_values).var() / kept_returns.var().clamp(min=1e-8) if n_steps > 1 else None
    return {"loss": stats.loss.item(), "clip_fraction": stats.clip_fraction, "kl": stats.kl,
            "value_loss": value_loss.item(),
            "value/mean": kept_values.mean().item() if n_steps else float("nan"),
            "value/explained_variance": explained.item() if explained is not None else float("nan"),
            "formula/decisions/mean": n_steps / max(int(out.reward.finite.sum()), 1)}
