"""GRPO over whole formulas on the tiny pipeline (policy.kind=formulas): what it logs, truth by mask or by reward,
exact resume, and the config errors."""
import json

import pytest
import torch
from safetensors.torch import load_file

from pcdrl.explanations import concepts, fits, parse
from pcdrl.pcd.concepts import labelled_concepts
from pcdrl.pcd.train_state import latest_checkpoint
from pcdrl.runtime.config_loader import ConfigError, load_config
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.rl.trainer import train


def _cfg(pipeline, *extra):
    judge = f"{{name: tiny, backend: {{model: {pipeline['model']}}}}}"
    return load_config(RLTrainConfig, None, [
        f"pcd={pipeline['pcd']}", f"data={pipeline['data']}", "families=[continuation,audit]", f"judge={judge}",
        "heldout_judges=[]", "policy.kind=formulas", "policy.k=2", "grpo.group_size=2", "items_per_step=3",
        "steps=2", "checkpoint_every=1", "max_train_items=12", "max_eval_items=4", "formula.max_literals=3",
        "formula.warm_start_steps=10", "formula.hidden=16", "rewards={judge_logprob: 1.0, sparsity: 0.1}",
        "kl.beta=0.05", *extra,
    ])


def _rows(out, name):
    return [json.loads(line) for line in (out / name).read_text().splitlines()]


def _labels(pipeline):
    return labelled_concepts(json.loads((pipeline["pcd"] / "concepts.json").read_text()))


def test_formula_grpo_logs_true_formulas_and_resumes_exactly(pipeline, tmp_path):
    cfg = _cfg(pipeline, "steps=3")
    summary = train(cfg, tmp_path / "full")
    records = _rows(tmp_path / "full", "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        # The truth mask makes every sampled formula true on its item; the judge's reward is logged beside it.
        assert r["formula/true_share"] == 1.0
        assert 1.0 <= r["formula/size/mean"] <= 3.0
        assert "reward/judge_logprob/mean" in r and r["reward/sparsity/mean"] == -r["formula/size/mean"]
    logged, labels = _rows(tmp_path / "full", "formulas.jsonl"), _labels(pipeline)
    assert len(logged) == 3 * 3 * 2  # steps x items x samples
    for row in logged:
        f = parse(row["formula"])
        assert row["true"] and fits(f, cfg.formula) and parse(row["text"], labels) == f
        assert set(concepts(f)) <= set(labels)
    assert summary["warm_start"]["items"] + summary["warm_start"]["skipped_items"] == 12
    assert 0.0 <= summary["warm_start"]["accuracy"] <= 1.0
    assert summary["heldout_formulas_rl"]["true_share"] == 1.0 and "tiny" in summary["heldout_accuracy_pretrained"]

    full = load_file(latest_checkpoint(tmp_path / "full" / "checkpoints") / "trainable.safetensors")
    assert not any("concept_head" in k for k in full), "the frozen copy of W_enc is not a trainable tensor"
    assert any(k.startswith("policy.cell.") for k in full) and "buffer::logit_scale" in full
    before = load_file(tmp_path / "full" / "checkpoints" / "step_000002" / "trainable.safetensors")
    assert any(not torch.equal(before[k], full[k]) for k in full), "a GRPO step moved the formula policy"
    # Two steps, then resume to three: the same weights as three straight.
    train(_cfg(pipeline, "steps=2"), tmp_path / "split")
    train(cfg, tmp_path / "split", resume=True)
    resumed = load_file(latest_checkpoint(tmp_path / "split" / "checkpoints") / "trainable.safetensors")
    assert set(resumed) == set(full) and all(torch.equal(resumed[k], full[k]) for k in full)


def test_truth_by_reward_logs_the_truth_term(pipeline, tmp_path):
    train(_cfg(pipeline, "steps=1", "formula.truth=reward", "evaluate_pretrained=false",
               "rewards={judge_logprob: 1.0, truth: 0.5}"), tmp_path / "run")
    record = _rows(tmp_path / "run", "metrics.jsonl")[0]
    # Without the truth mask, the term is each formula's truth, so its mean is the share of true formulas.
    assert record["reward/truth/mean"] == pytest.approx(record["formula/true_share"])
    logged = _rows(tmp_path / "run", "formulas.jsonl")
    assert [row["true"] for row in logged].count(True) / len(logged) == pytest.approx(record["formula/true_share"])


def test_config_errors_name_the_field(pipeline):
    with pytest.raises(ConfigError, match=r"policy\.kind.*'formula'.*concepts.*formulas"):
        _cfg(pipeline, "policy.kind=formula")
    with pytest.raises(ConfigError, match=r"formula\.max_literals"):
        _cfg(pipeline, "formula.max_literals=0")
    with pytest.raises(ConfigError, match=r"formula\.truth.*'masked'"):
        _cfg(pipeline, "formula.truth=masked")
    with pytest.raises(ConfigError, match=r"rewards\.truth scores formulas; set policy\.kind=formulas"):
        _cfg(pipeline, "policy.kind=concepts", "rewards={judge_logprob: 1.0, truth: 0.5}")
    assert _cfg(pipeline, "algorithm=ppo").samples_per_item == 1, "PPO trains formulas too (test_formula_ppo.py)"
    with pytest.raises(ConfigError, match=r"rewards\.grounding .*cannot score formulas"):
        _cfg(pipeline, "rewards={judge_logprob: 1.0, grounding: 0.5}")


def test_sparsity_counts_literals_and_truth_reads_the_formula_truth():
    from pcdrl.rewards import BUILTIN, RewardBatch

    # A formula may repeat a concept: `c1 AND NOT c1 OR c2` names 2 concepts in 3 literals; sparsity counts literals.
    formulas = RewardBatch(judge_probs=None, answers=[0, 0], concepts=[[1, 2], [3]], explanation_size=[3, 1],
                           formula_true=[True, False])
    assert BUILTIN["sparsity"](formulas).tolist() == [-3.0, -1.0]
    assert BUILTIN["truth"](formulas).tolist() == [1.0, 0.0]
    sets = RewardBatch(judge_probs=None, answers=[0, 0], concepts=[[1, 2], [3]])
    assert BUILTIN["sparsity"](sets).tolist() == [-2.0, -1.0]  # concept sets: the number of concepts, as before
    with pytest.raises(ValueError, match="reward 'truth' needs the batch's formula_true.*policy.kind=formulas"):
        BUILTIN["truth"](sets)
