"""One optimisation phase on a finished rollout: GRPO (group baselines) or PPO (a learned critic).

GRPO also trains the formula policy, with a per-token loss in place of the per-pick one (`policy_loss`).
Both see the same thing: per-pick log-probs of the sampled concept sets under the current
policy, the log-probs they were sampled with, and one reward per set. They differ only in the
baseline behind the advantage. Rows whose reward is not finite are left out of the loss and
counted in the metrics (`reward/nonfinite_rows`); they enter a GRPO group's mean as 0.
"""
from __future__ import annotations

import torch

from pcdrl.rl.critic import ValueHead
from pcdrl.rl.losses import clipped_policy_loss, clipped_value_loss, gae, group_advantages
from pcdrl.rl.policy import ConceptSetPolicy, kl_estimate
from pcdrl.rl.rollout import Rollout
from pcdrl.rl.sampling import plackett_luce_step_logprobs
from pcdrl.rl.train_config import RLTrainConfig


def _policy_loss(policy, pooled_rows, out: Rollout, advantages, cfg: RLTrainConfig, loss_type, clip_low, clip_high):
    mask = out.reward.finite.float().unsqueeze(1).expand_as(out.old_logprobs)
    logprobs = plackett_luce_step_logprobs(policy.logits(pooled_rows), out.chosen, policy.config.temperature)
    kl = kl_estimate(logprobs, out.ref_logprobs, cfg.kl.estimator) if cfg.kl.beta else None
    return clipped_policy_loss(logprobs, out.old_logprobs, advantages, mask, loss_type, clip_low, clip_high,
                               kl, cfg.kl.beta)


def grpo_update(policy: ConceptSetPolicy, optimizer, pooled_rows: torch.Tensor, out: Rollout,
                cfg: RLTrainConfig, policy_loss=_policy_loss) -> dict:
    """``policy_loss`` turns the rollout and advantages into the clipped loss: per pick for concept sets, per
    token for formulas (`formula_rollout.formula_policy_loss`, which passes its own rollout as ``out``)."""
    g = cfg.grpo
    rewards = out.reward.total.float().nan_to_num(0.0)
    advantages = group_advantages(rewards, g.group_size, g.scale)
    # How much the sets of one item differ in reward: the only signal GRPO learns from (as trl's frac_reward_zero_std).
    within = rewards.view(-1, g.group_size).std(dim=1, unbiased=False)
    for _ in range(g.updates_per_batch):
        stats = policy_loss(policy, pooled_rows, out, advantages, cfg, g.loss_type, g.clip_low, g.clip_high)
        optimizer.zero_grad(set_to_none=True)
        stats.loss.backward()
        optimizer.step()
    return {"loss": stats.loss.item(), "clip_fraction": stats.clip_fraction, "kl": stats.kl,
            "reward/within_group_std": within.mean().item(), "reward/zero_std_groups": (within < 1e-6).float().mean().item()}


def ppo_update(policy: ConceptSetPolicy, critic: ValueHead, optimizer, pooled_rows: torch.Tensor, out: Rollout,
               cfg: RLTrainConfig) -> dict:
    p = cfg.ppo
    finite = out.reward.finite
    rewards = out.reward.total.float().nan_to_num(0.0)
    with torch.no_grad():
        old_values = critic(pooled_rows)
    # An explanation is a one-step episode: GAE with T = 1 and a terminal next state is r − V(s).
    ones = torch.ones(len(rewards), 1)
    bootstrap = torch.cat([old_values.unsqueeze(1), torch.zeros(len(rewards), 1)], dim=1)
    advantages, returns = gae(rewards.unsqueeze(1), bootstrap, ones, p.gamma, p.lam)
    advantages, returns = advantages.squeeze(1), returns.squeeze(1)
    if p.normalize_advantages and finite.sum() > 1:
        kept = advantages[finite]
        advantages = (advantages - kept.mean()) / (kept.std(unbiased=False) + 1e-6)
    for _ in range(p.updates_per_batch):
        stats = _policy_loss(policy, pooled_rows, out, advantages, cfg, p.loss_type, p.clip_low, p.clip_high)
        values = critic(pooled_rows)
        value_loss = clipped_value_loss(values[finite], old_values[finite], returns[finite], p.value_clip) \
            if finite.any() else values.sum() * 0.0
        optimizer.zero_grad(set_to_none=True)
        (stats.loss + p.value_coef * value_loss).backward()
        optimizer.step()
    explained = 1 - (returns[finite] - old_values[finite]).var() / returns[finite].var().clamp(min=1e-8)
    return {"loss": stats.loss.item(), "clip_fraction": stats.clip_fraction, "kl": stats.kl,
            "value_loss": value_loss.item(), "value/mean": old_values.mean().item(),
            "value/explained_variance": explained.item() if finite.sum() > 1 else float("nan")}
