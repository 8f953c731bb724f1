"""GRPO and PPO updates on a synthetic rollout: they raise the rewarded sets' probability, the critic
learns the reward, and a row with a NaN reward has no effect on the gradient."""
import torch

from pcdrl.runtime.config_loader import load_config
from pcdrl.pcd.concepts import pooled_inputs
from pcdrl.pcd.encoder import ConceptEncoder
from pcdrl.rewards import CombinedReward
from pcdrl.rl.critic import ValueHead
from pcdrl.rl.policy import ConceptSetPolicy, PolicyConfig
from pcdrl.rl.rollout import Rollout
from pcdrl.rl.sampling import plackett_luce_step_logprobs
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.rl.updates import grpo_update, ppo_update


def _setup(group=4, items=3):
    torch.manual_seed(0)
    encoder = ConceptEncoder(16, 24, k=4, generator=torch.Generator().manual_seed(0))
    policy = ConceptSetPolicy(encoder, PolicyConfig(k=3, temperature=1.0))
    pooled = pooled_inputs(encoder, [torch.randn(3, 16) for _ in range(items)])
    rows = torch.arange(items).repeat_interleave(group)
    pooled_rows = pooled[rows]
    chosen = policy.sample(pooled_rows, torch.Generator().manual_seed(1))
    with torch.no_grad():
        old = plackett_luce_step_logprobs(policy.logits(pooled_rows), chosen, 1.0)
    # Reward: 1 when concept 5 is in the set, else 0 (a stand-in for a judge that likes one label).
    reward = (chosen == 5).any(1).float() + 0.1 * torch.randn(len(rows))
    return policy, pooled_rows, rows, chosen, old, reward


def _rollout(rows, chosen, old, reward):
    finite = torch.isfinite(reward)
    return Rollout(rows, chosen, old, old.clone(), None, CombinedReward(reward, {"r": reward}, finite))


def _logprob_of_5(policy, pooled_rows):
    return torch.log_softmax(policy.logits(pooled_rows), -1)[:, 5].mean().item()


def test_grpo_update_raises_the_rewarded_concept():
    policy, pooled_rows, rows, chosen, old, reward = _setup()
    cfg = load_config(RLTrainConfig, None, ["grpo.group_size=4", "grpo.updates_per_batch=3", "heldout_judges=[]"])
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=0.05)
    before = _logprob_of_5(policy, pooled_rows)
    stats = grpo_update(policy, optimizer, pooled_rows, _rollout(rows, chosen, old, reward), cfg)
    assert _logprob_of_5(policy, pooled_rows) > before + 0.01
    assert 0 <= stats["clip_fraction"] <= 1


def test_a_nan_reward_row_does_not_touch_the_gradient():
    policy, pooled_rows, rows, chosen, old, reward = _setup()
    cfg = load_config(RLTrainConfig, None, ["grpo.group_size=4", "grpo.scale=none", "heldout_judges=[]"])
    grads = []
    for poisoned in (False, True):
        torch.manual_seed(0)
        fresh, *_ = _setup()
        optimizer = torch.optim.SGD(fresh.trainable_parameters(), lr=0.0)  # gradients only
        r = reward.clone()
        if poisoned:
            r[0] = float("nan")
        grpo_update(fresh, optimizer, pooled_rows, _rollout(rows, chosen, old, r), cfg)
        grads.append(torch.cat([p.grad.flatten() for p in fresh.trainable_parameters() if p.grad is not None]))
        assert torch.isfinite(grads[-1]).all()
    assert not torch.allclose(grads[0], grads[1]), "row 0 no longer contributes"


def test_ppo_update_fits_the_critic_and_raises_the_rewarded_concept():
    policy, pooled_rows, rows, chosen, old, reward = _setup(group=1, items=48)
    cfg = load_config(RLTrainConfig, None, ["algorithm=ppo", "ppo.updates_per_batch=8", "heldout_judges=[]"])
    critic = ValueHead(16, 32)
    optimizer = torch.optim.Adam([{"params": policy.trainable_parameters(), "lr": 0.05},
                                  {"params": list(critic.parameters()), "lr": 0.05}])
    before_value = ((critic(pooled_rows) - reward) ** 2).mean().item()
    before = _logprob_of_5(policy, pooled_rows)
    stats = ppo_update(policy, critic, optimizer, pooled_rows, _rollout(rows, chosen, old, reward), cfg)
    assert ((critic(pooled_rows) - reward) ** 2).mean().item() < before_value
    assert _logprob_of_5(policy, pooled_rows) > before
    assert {"value_loss", "value/mean", "value/explained_variance"} <= set(stats)
