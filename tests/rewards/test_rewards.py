import math

import pytest
import torch

from pcdrl.rewards import BUILTIN, RewardBatch, RewardConfigError, combine, resolve


def batch(**extra):
    return RewardBatch(
        judge_probs=[[0.7, 0.3], [0.5, 0.5], [0.1, 0.9]], answers=[0, 1, 0], concepts=[[1, 2], [3], [4, 5, 6]],
        **extra,
    )


def test_judge_terms():
    b = batch()
    assert BUILTIN["judge_correct"](b).tolist() == [1.0, 0.5, 0.0]  # a tie shares the point
    assert BUILTIN["judge_logprob"](b).tolist() == pytest.approx([math.log(0.7), math.log(0.5), math.log(0.1)])
    assert BUILTIN["brier"](b).tolist() == pytest.approx([-0.18, -0.5, -1.62])
    assert BUILTIN["sparsity"](b).tolist() == [-2.0, -1.0, -3.0]


def test_fidelity_counts_chosen_concepts_among_the_active_ones():
    logits = torch.zeros(3, 8)
    logits[0, [1, 7]] = 5.0  # row 0: concepts 1 and 7 are the top 2; it chose 1 and 2
    logits[1, [3, 4]] = 5.0
    logits[2, [0, 1]] = 5.0
    values = BUILTIN["fidelity"](batch(concept_logits=logits, top_k_active=2))
    assert values.tolist() == [0.5, 1.0, 0.0]
    with pytest.raises(ValueError, match="needs the batch's concept_logits"):
        BUILTIN["fidelity"](batch())


def test_grounding_is_minus_the_decoder_loss():
    assert BUILTIN["grounding"](batch(grounding_loss=torch.tensor([1.0, 2.0, 0.5]))).tolist() == [-1.0, -2.0, -0.5]


def test_combine_weights_logs_each_term_and_flags_nan_rows():
    b = batch(grounding_loss=torch.tensor([1.0, float("nan"), 0.5]))
    combined = combine({"judge_correct": 1.0, "sparsity": 0.1, "grounding": 0.5}, b)
    assert combined.total[0].item() == pytest.approx(1.0 - 0.2 - 0.5)
    assert combined.finite.tolist() == [True, False, True]
    record = combined.log_record()
    assert record["reward/judge_correct/mean"] == pytest.approx(0.5)
    assert record["reward/nonfinite_rows"] == 1 and math.isfinite(record["reward/total/mean"])
    assert set(record) >= {f"reward/{n}/{s}" for n in ("judge_correct", "sparsity", "grounding") for s in ("mean", "std")}


def test_plugins_and_bad_names(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text("import torch\ndef short(batch):\n    return torch.ones(len(batch))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert combine({"my_rewards:short": 2.0}, batch()).total.tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(RewardConfigError, match="unknown reward 'judge_corect'; built-in rewards: brier, fidelity"):
        resolve("judge_corect")
    with pytest.raises(RewardConfigError, match="has no function 'long'"):
        resolve("my_rewards:long")
    with pytest.raises(RewardConfigError, match="cannot import module 'nowhere'"):
        resolve("nowhere:fn")
    with pytest.raises(RewardConfigError, match="every weight is zero"):
        combine({"judge_correct": 0.0, "brier": 0}, batch())
