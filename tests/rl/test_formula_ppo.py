"""Token-level PPO with GAE on formulas: GAE over decision tokens only, what an update moves (and what GRPO leaves
alone), the shipped config, and an exact resume on the tiny pipeline with formulas.jsonl trimmed to the checkpoint."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pcdrl.pcd.train_state import latest_checkpoint
from pcdrl.rewards import CombinedReward
from pcdrl.rl.formula_policy import FormulaPolicy, FormulaPolicyConfig, evaluate_tokens, frozen_copy, log_probs, sample
from pcdrl.rl.formula_ppo import decision_gae, formula_ppo_update, value_parameters
from pcdrl.rl.formula_rollout import FormulaRollout, FormulaSetup, formula_policy_loss, keep_formulas_through
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.rl.trainer import train
from pcdrl.rl.updates import grpo_update
from pcdrl.runtime.config_loader import load_config

REPO = Path(__file__).resolve().parents[2]
N_CONCEPTS, D = 16, 8


def test_gae_runs_over_decision_tokens_only_with_the_reward_on_the_last_one():
    # Row 0: decision, forced, decision, forced, forced (END). Row 1: three decisions with a forced token between.
    # Row 2 has no decision (its reward is not finite, say): nothing. Values on forced tokens are junk (9.0): unread.
    steps = torch.tensor([[1, 0, 1, 0, 0], [1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    values = torch.tensor([[0.5, 9.0, 0.2, 9.0, 9.0], [0.1, -0.3, 9.0, 0.4, 9.0], [9.0] * 5])
    rewards = torch.tensor([1.0, -2.0, 5.0])
    advantages, returns = decision_gae(rewards, values, steps, gamma=0.9, lam=0.8)
    # By hand, γλ = 0.72 per *decision* step (a forced token is not a step), and V after the last decision is 0:
    #   row 0: δ1 = 1 − 0.2 = 0.8;  δ0 = 0.9·0.2 − 0.5 = −0.32, A0 = −0.32 + 0.72·0.8 = 0.256
    #   row 1: δ2 = −2 − 0.4 = −2.4;  δ1 = 0.9·0.4 + 0.3 = 0.66, A1 = 0.66 − 0.72·2.4 = −1.068
    #          δ0 = 0.9·(−0.3) − 0.1 = −0.37, A0 = −0.37 − 0.72·1.068 = −1.13896
    expected = torch.tensor([[0.256, 0, 0.8, 0, 0], [-1.13896, -1.068, 0, -2.4, 0], [0] * 5])
    assert torch.allclose(advantages, expected, atol=1e-6)
    assert torch.allclose(returns, (expected + values) * steps, atol=1e-6), "return = A + V on steps, 0 elsewhere"
    # λ = γ = 1: every step's return is the terminal reward (a Monte-Carlo return).
    _, mc = decision_gae(rewards, values, steps, gamma=1.0, lam=1.0)
    assert torch.allclose(mc[steps], torch.tensor([1.0, 1.0, -2.0, -2.0, -2.0]))


def _cfg(*extra: str) -> RLTrainConfig:
    return load_config(RLTrainConfig, None, [
        "algorithm=ppo", "policy.kind=formulas", "formula.max_literals=3", "formula.max_depth=2",
        "ppo.samples_per_item=4", "ppo.updates_per_batch=2", "ppo.gamma=1.0", "ppo.lam=1.0", "ppo.value_lr=1e-2",
        "kl.beta=0.0", "grpo.group_size=4", "rewards={judge_logprob: 1.0}", *extra])


def _setup_and_rollout(cfg: RLTrainConfig, n_items: int = 2, seed: int = 0):
    """A formula policy over random items, and a rollout of G formulas per item with fixed rewards: 1 for the item's
    first formula (wherever it was drawn), 0 for the others."""
    torch.manual_seed(seed)
    policy = FormulaPolicy(D, N_CONCEPTS, FormulaPolicyConfig(hidden=32, embed=16))
    g = torch.Generator().manual_seed(seed)
    pooled, fired = torch.randn(n_items, D, generator=g), torch.rand(n_items, N_CONCEPTS, generator=g) < 0.4
    allowed = torch.ones(N_CONCEPTS, dtype=torch.bool)
    setup = FormulaSetup(policy, frozen_copy(policy), cfg, allowed, fired, fired, {})
    rows = torch.arange(n_items).repeat_interleave(cfg.samples_per_item)
    drawn = sample(policy, pooled[rows], cfg.formula, allowed, fired[rows], 1.0, g)
    ref = log_probs(setup.reference, pooled[rows], drawn.tokens, cfg.formula, allowed, fired[rows])
    first = drawn.tokens[rows * cfg.samples_per_item]
    total = (drawn.tokens == first).all(1).double()
    out = FormulaRollout(rows, drawn.tokens, drawn.logprobs, ref, drawn.mask & (drawn.logprobs != 0), drawn.formulas,
                         [""] * len(rows), torch.ones(len(rows), dtype=torch.bool), fired[rows], None,
                         CombinedReward(total, {}, torch.isfinite(total)))
    return setup, out, pooled[rows]


def _optimizer(policy, cfg, ppo: bool):
    """The groups the trainer builds: with PPO the value head at ppo.value_lr; with GRPO one group for all."""
    if not ppo:
        return torch.optim.Adam([{"params": policy.trainable_parameters(), "lr": cfg.lr}])
    value = value_parameters(policy)
    rest = [p for p in policy.trainable_parameters() if all(p is not v for v in value)]
    return torch.optim.Adam([{"params": rest, "lr": cfg.lr}, {"params": value, "lr": cfg.ppo.value_lr}])


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _value_errors(setup, out, pooled_rows, cfg) -> tuple[float, float]:
    """The critic's squared error on every decision token against the formula's reward (the return at γ = λ = 1),
    and its largest error on an item's first prefix (the empty formula) against the item's mean reward."""
    values = evaluate_tokens(setup.policy, pooled_rows, out.tokens, cfg.formula, setup.allowed,
                             out.truth_mask).values.detach()
    rewards = out.reward.total.float()
    every = (0.5 * (values - rewards.unsqueeze(1)) ** 2)[out.decisions].mean().item()
    item_means = rewards.view(-1, cfg.samples_per_item).mean(1).repeat_interleave(cfg.samples_per_item)
    return every, (values[:, 0] - item_means).abs().max().item()


def test_ppo_updates_fit_the_critic_and_favour_the_higher_reward_formula():
    cfg = _cfg()
    setup, out, pooled_rows = _setup_and_rollout(cfg)
    assert (out.reward.total.view(-1, 4) == 0).any(1).all(), "each item has a formula other than its first"
    policy, optimizer = setup.policy, _optimizer(setup.policy, cfg, ppo=True)
    before, start = _snapshot(policy), log_probs(policy, pooled_rows, out.tokens, cfg.formula, setup.allowed,
                                                 out.truth_mask).detach().sum(1)
    errors = _value_errors(setup, out, pooled_rows, cfg)
    for _ in range(12):  # the same formulas and rewards, each round sampled again by the current policy
        out.old_logprobs = log_probs(policy, pooled_rows, out.tokens, cfg.formula, setup.allowed,
                                     out.truth_mask).detach()
        metrics = formula_ppo_update(setup, optimizer, pooled_rows, out, cfg)
    after = log_probs(policy, pooled_rows, out.tokens, cfg.formula, setup.allowed, out.truth_mask).detach().sum(1)
    every, first = _value_errors(setup, out, pooled_rows, cfg)
    # Prefixes shared by formulas of different rewards cannot be fitted exactly, so the whole error only falls;
    # an item's first prefix has one target, its mean reward, and the critic gets close to it.
    assert every < errors[0] and first < 0.5 * errors[1], (errors, every, first)
    rewarded = out.reward.total.bool()
    assert (after[rewarded] > start[rewarded]).all(), "every rewarded formula is more likely"
    assert (after[~rewarded] < start[~rewarded]).all(), "every other formula is less likely"
    assert not torch.equal(before["value_head.weight"], policy.value_head.weight)
    assert not torch.equal(before["cell.weight_hh"], policy.cell.weight_hh)
    assert set(metrics) >= {"loss", "clip_fraction", "kl", "value_loss", "value/mean", "value/explained_variance"}


def test_non_finite_rewards_have_no_steps():
    cfg = _cfg("ppo.updates_per_batch=1")
    setup, out, pooled_rows = _setup_and_rollout(cfg, n_items=2)
    out.reward.total[:4] = float("nan")
    out.reward.finite[:4] = False
    metrics = formula_ppo_update(setup, _optimizer(setup.policy, cfg, ppo=True), pooled_rows, out, cfg)
    assert all(torch.isfinite(torch.tensor(v)) for v in (metrics["loss"], metrics["value_loss"], metrics["value/mean"]))
    assert all(torch.isfinite(p).all() for p in setup.policy.parameters())
    decisions = out.decisions[4:].sum().item() / 4
    assert metrics["formula/decisions/mean"] == pytest.approx(decisions), "only the finite rows count"


def test_grpo_on_formulas_leaves_the_value_head_untouched():
    cfg = _cfg("algorithm=grpo", "kl.beta=0.05")
    setup, out, pooled_rows = _setup_and_rollout(cfg)
    before = _snapshot(setup.policy)
    grpo_update(setup.policy, _optimizer(setup.policy, cfg, ppo=False), pooled_rows, out, cfg,
                formula_policy_loss(setup))
    assert torch.equal(before["value_head.weight"], setup.policy.value_head.weight)
    assert torch.equal(before["value_head.bias"], setup.policy.value_head.bias)
    assert not torch.equal(before["cell.weight_hh"], setup.policy.cell.weight_hh), "the policy itself moved"


def test_keep_formulas_through_drops_later_steps_and_a_torn_line(tmp_path):
    path = tmp_path / "formulas.jsonl"
    lines = "".join(json.dumps({"step": s, "item": i}) + "\n" for s in (1, 2, 3) for i in "ab")
    path.write_text(lines + '{"step": 3, "it')  # a run killed mid-write
    keep_formulas_through(path, 2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 1, 2, 2]
    keep_formulas_through(path, 0)
    assert path.read_text() == ""
    keep_formulas_through(tmp_path / "absent.jsonl", 3)
    assert not (tmp_path / "absent.jsonl").exists()


def test_the_shipped_ppo_formulas_config_matches_grpo_formulas_budget(monkeypatch):
    monkeypatch.chdir(REPO)  # paths inside are relative to the repository root
    ppo = load_config(RLTrainConfig, "configs/rl/ppo_formulas.yaml")
    grpo = load_config(RLTrainConfig, "configs/rl/grpo_formulas.yaml")
    assert (ppo.algorithm, ppo.policy.kind, grpo.algorithm) == ("ppo", "formulas", "grpo")
    assert ppo.samples_per_item == grpo.samples_per_item == 4
    assert (ppo.steps, ppo.items_per_step) == (grpo.steps, grpo.items_per_step)
    assert (ppo.formula, ppo.rewards, ppo.judge, ppo.kl) == (grpo.formula, grpo.rewards, grpo.judge, grpo.kl)


# --- the trainer, on the tiny pipeline --------------------------------------------------------------------------

def _train_cfg(pipeline, *extra):
    judge = f"{{name: tiny, backend: {{model: {pipeline['model']}}}}}"
    return load_config(RLTrainConfig, None, [
        f"pcd={pipeline['pcd']}", f"data={pipeline['data']}", "families=[continuation,audit]", f"judge={judge}",
        "heldout_judges=[]", "algorithm=ppo", "policy.kind=formulas", "policy.k=2", "ppo.samples_per_item=2",
        "ppo.updates_per_batch=2", "ppo.lam=0.9", "items_per_step=3", "steps=3", "checkpoint_every=2",
        "max_train_items=12", "max_eval_items=4", "formula.max_literals=3", "formula.warm_start_steps=10",
        "formula.hidden=16", "rewards={judge_logprob: 1.0, sparsity: 0.1}", "kl.beta=0.05",
        "evaluate_pretrained=false", *extra,
    ])


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ppo_formulas_trains_the_value_head_and_resumes_exactly_without_duplicate_formulas(pipeline, tmp_path):
    cfg = _train_cfg(pipeline)
    train(cfg, tmp_path / "full")
    full_dir = tmp_path / "full" / "checkpoints"
    full, at2 = (load_file(full_dir / f"step_00000{s}" / "trainable.safetensors") for s in (3, 2))
    assert not torch.equal(full["policy.value_head.weight"], at2["policy.value_head.weight"]), "PPO trains V"
    groups = json.loads((full_dir / "step_000003" / "state.json").read_text())["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == [cfg.lr, cfg.ppo.value_lr] and len(groups[1]["params"]) == 2
    metrics = _rows(tmp_path / "full" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all("value_loss" in m and "value/explained_variance" in m and m["formula/true_share"] == 1.0
               for m in metrics)
    logged = _rows(tmp_path / "full" / "formulas.jsonl")
    assert len(logged) == 3 * 3 * 2, "steps x items x samples_per_item"
    assert all(logged[i]["item"] == logged[i + 1]["item"] for i in range(0, len(logged), 2)), "samples of an item"

    # The same run killed after logging step 3 but before its checkpoint: the pointer still names step 2.
    split = tmp_path / "split"
    train(cfg, split)
    (split / "checkpoints" / "latest.txt").write_text("step_000002\n")
    for f in (split / "checkpoints" / "step_000003").iterdir():
        f.unlink()
    (split / "checkpoints" / "step_000003").rmdir()
    train(cfg, split, resume=True)
    resumed = load_file(latest_checkpoint(split / "checkpoints") / "trainable.safetensors")
    assert set(resumed) == set(full) and all(torch.equal(resumed[k], full[k]) for k in full)
    assert _rows(split / "formulas.jsonl") == logged, "step 3 logged once, with the same formulas"
