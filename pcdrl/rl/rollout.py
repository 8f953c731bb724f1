"""One rollout: G concept sets per item, rendered as labels, answered by the judge, turned into rewards.

The encoder never sees the question: the policy reads only the pooled activation, and the
question enters only at the judge. When no reward term reads the judge's probabilities (say
judge_true_pmi with sparsity), the judge scores only each row's true option.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pcdrl.rewards import CombinedReward, RewardBatch, check_weights, combine
from pcdrl.rewards.registry import needs_every_option
from pcdrl.rl.policy import ConceptSetPolicy
from pcdrl.rl.sampling import gumbel_top_k, plackett_luce_step_logprobs
from pcdrl.rl.timing import Stopwatch
from pcdrl.simulators.judge import Judge, JudgeAnswers
from pcdrl.simulators.render import Explanation


@dataclass
class Rollout:
    item_rows: torch.Tensor
    """[N·G] which item each sample belongs to (groups are contiguous)."""
    chosen: torch.Tensor
    """[N·G, K] the sampled concept ids, in pick order."""
    old_logprobs: torch.Tensor
    """[N·G, K] per-pick log-probs under the sampling policy."""
    ref_logprobs: torch.Tensor
    """[N·G, K] per-pick log-probs under the frozen pretrained policy."""
    answers: JudgeAnswers
    reward: CombinedReward


def rollout(policy: ConceptSetPolicy, pooled: torch.Tensor, items: list[dict], labels: dict[int, str], judge: Judge,
            weights: dict[str, float], group_size: int, generator: torch.Generator | None = None,
            reward_functions=None, top_k_active: int = 16, watch: Stopwatch | None = None,
            grounding=None) -> Rollout:
    """``grounding``, when the `grounding` term is on, maps (item_rows, chosen) to the PCD decoder's loss per row
    (`pcdrl.pcd.grounding`, wired by the trainer): the reward terms only read the numbers it returns."""
    watch = watch or Stopwatch()
    rows = torch.arange(len(items)).repeat_interleave(group_size)
    repeated = pooled[rows]
    with watch("sample"), torch.no_grad():
        logits = policy.logits(repeated)  # once: the sample and its log-probs come from the same forward
        chosen = gumbel_top_k(logits, policy.config.k, policy.config.temperature, generator)
        old = plackett_luce_step_logprobs(logits, chosen, policy.config.temperature)
        reference_logits = policy.reference_logits(repeated)
        ref = plackett_luce_step_logprobs(reference_logits, chosen, policy.config.temperature)
    sampled_items = [items[r] for r in rows.tolist()]
    explanations = [Explanation(labels=tuple(labels[c] for c in row)) for row in chosen.tolist()]
    reward_functions = reward_functions or check_weights(weights)
    truth = [it["answer"] for it in sampled_items]
    every_option = needs_every_option(reward_functions)
    with watch("judge"):
        answers = judge.answer([it["question"] for it in sampled_items], [it["options"] for it in sampled_items],
                               explanations, only=None if every_option else truth)
    with watch("reward"):
        batch = RewardBatch(
            judge_probs=answers.probs if every_option else None, answers=truth, concepts=chosen.tolist(),
            concept_logits=reference_logits.masked_fill(~torch.isfinite(reference_logits), -1e9),
            top_k_active=top_k_active, grounding_loss=grounding(rows, chosen) if grounding is not None else None,
            judge_true_scores=[s[a] for s, a in zip(answers.scores, truth)], judge_calibration=judge.cfg.calibration,
            explanation_size=[chosen.shape[1]] * len(chosen),
        )
        reward = combine(weights, batch, reward_functions)
    return Rollout(rows, chosen, old, ref, answers, reward)
