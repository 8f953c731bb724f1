import pytest
import torch

from pcdrl.rl.losses import clipped_policy_loss, clipped_value_loss, gae, group_advantages
from pcdrl.rl.sampling import plackett_luce_logprob, plackett_luce_step_logprobs


def test_step_logprobs_sum_to_the_set_logprob():
    logits, chosen = torch.randn(3, 10), torch.tensor([[1, 2, 3], [9, 0, 4], [5, 6, 7]])
    assert torch.allclose(plackett_luce_step_logprobs(logits, chosen).sum(1), plackett_luce_logprob(logits, chosen))


def test_group_advantages():
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 2.0, 2.0])
    none = group_advantages(rewards, 2, "none")
    assert none.tolist() == [0.5, -0.5, 0.5, -0.5, 0.0, 0.0]  # a group with one reward teaches nothing
    assert group_advantages(rewards, 2, "group")[:2].tolist() == pytest.approx([1.0, -1.0], abs=1e-4)
    assert torch.allclose(group_advantages(rewards, 2, "batch"), none / rewards.std(unbiased=False), atol=1e-5)
    with pytest.raises(ValueError, match="do not split into groups of 4"):
        group_advantages(rewards, 4)
    with pytest.raises(ValueError, match="advantage scale 'std' is unknown"):
        group_advantages(rewards, 2, "std")


def test_loss_variants_and_clipping():
    old = torch.zeros(2, 3)
    new = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    stats = {t: clipped_policy_loss(new, old, adv, mask, t) for t in ("grpo", "dr_grpo", "dapo")}
    # exp(0.5) = 1.65 is clipped to 1.2 for a positive advantage; the others have ratio 1.
    assert stats["grpo"].loss.item() == pytest.approx(((-1.2 - 1 - 1) / 3 + (1 + 1) / 2) / 2, abs=1e-5)
    assert stats["dapo"].loss.item() == pytest.approx((-1.2 - 1 - 1 + 1 + 1) / 5, abs=1e-5)
    assert stats["dr_grpo"].loss.item() == pytest.approx((-1.2 - 1 - 1 + 1 + 1) / 6, abs=1e-5)
    assert stats["grpo"].clip_fraction == pytest.approx(1 / 5)
    stats["grpo"].loss.backward()
    assert new.grad[0, 0] == 0.0, "a clipped pick passes no gradient"
    with pytest.raises(ValueError, match="loss_type 'ppo' is unknown"):
        clipped_policy_loss(new, old, adv, mask, "ppo")


def test_kl_term_adds_beta_times_kl():
    zeros, mask = torch.zeros(2, 2), torch.ones(2, 2)
    kl = torch.full((2, 2), 0.5)
    stats = clipped_policy_loss(zeros, zeros, torch.zeros(2), mask, "grpo", kl=kl, beta=0.1)
    assert stats.loss.item() == pytest.approx(0.05) and stats.kl == pytest.approx(0.5)


def test_value_loss_and_gae():
    values, old, returns = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([2.0, 0.5])
    assert clipped_value_loss(values, old, returns, clip=0.2).item() == pytest.approx(0.5 * ((1.8 ** 2) + 0.25) / 2)
    rewards = torch.tensor([[1.0], [0.0]])
    adv, ret = gae(rewards, torch.tensor([[0.3, 0.0], [0.5, 0.0]]), torch.ones(2, 1))
    assert adv.squeeze(1).tolist() == pytest.approx([0.7, -0.5])  # single step: r - V
    assert ret.squeeze(1).tolist() == pytest.approx([1.0, 0.0])
    adv2, _ = gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.2, 0.6, 0.0]]), torch.ones(1, 2), gamma=0.9, lam=0.5)
    delta1 = 1.0 - 0.6
    delta0 = 0.0 + 0.9 * 0.6 - 0.2
    assert adv2.tolist()[0] == pytest.approx([delta0 + 0.9 * 0.5 * delta1, delta1])


def test_clipped_loss_takes_per_token_advantages_and_refuses_other_shapes():
    logprobs = torch.zeros(2, 3, requires_grad=True)
    mask = torch.ones(2, 3)
    per_sample = clipped_policy_loss(logprobs, logprobs.detach(), torch.tensor([1.0, -1.0]), mask, "dapo")
    per_token = clipped_policy_loss(logprobs, logprobs.detach(), torch.tensor([[1.0] * 3, [-1.0] * 3]), mask, "dapo")
    assert torch.equal(per_sample.loss, per_token.loss)  # one advantage per sample = the same one on every token
    skewed = clipped_policy_loss(logprobs, logprobs.detach(), torch.tensor([[3.0, 0, 0], [0, 0, 0]]), mask, "dapo")
    (grad,) = torch.autograd.grad(skewed.loss, logprobs)
    assert grad[0, 0] < 0 and torch.all(grad.flatten()[1:] == 0)  # only the token with an advantage moves
    with pytest.raises(ValueError, match="one per sample"):
        clipped_policy_loss(logprobs, logprobs.detach(), torch.ones(3), mask)
