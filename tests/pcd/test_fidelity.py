"""Concept fidelity: the labels' detection AUROC under the pretrained encoder and another one, paired."""
import copy
from dataclasses import asdict

import pytest
import torch

from pcdrl.runtime.config_loader import ConfigError
from pcdrl.pcd.config import CorpusConfig
from pcdrl.pcd.examples import firings_by_concept
from pcdrl.pcd.fidelity import FidelityConfig, _fidelity_windows, concept_fidelity
from pcdrl.pcd.labelling import read_and_encode

CONCEPTS = list(range(16))
LABELS = {c: f"concept number {c}" for c in CONCEPTS}


@pytest.fixture
def pcd(tiny_pcd, tiny_corpus):
    # What pretraining records, so the windows come from text the (here untrained) PCD never saw.
    tiny_pcd.training_data = {"corpus": asdict(CorpusConfig(path=str(tiny_corpus), max_windows=64)),
                              "window": {"prefix_len": 4, "middle_len": 4, "suffix_len": 4}, "seed": 0}
    return tiny_pcd


def _cfg(tiny_model_dir, **overrides) -> FidelityConfig:
    return FidelityConfig(**{"label_windows": 96, "min_examples": 3, "score_positives": 3, "score_negatives": 3,
                             "simulator_model": tiny_model_dir, "bootstrap_resamples": 200, **overrides})


def _permuted(linear: torch.nn.Linear, order: torch.Tensor) -> torch.nn.Linear:
    out = copy.deepcopy(linear)
    with torch.no_grad():
        out.weight.copy_(linear.weight[order])
        out.bias.copy_(linear.bias[order])
    return out


def test_read_and_encode_matches_pcd_encode(pcd, tiny_model_dir):
    """`pcdrl label` now encodes through the same path: it must equal PCD.encode's top-k."""
    windows = _fidelity_windows(pcd, 8)
    (firings,) = read_and_encode(pcd, windows, [pcd.encoder.W_enc])
    out = pcd.encode(pcd.read_activations(windows, slice(4, 8)))
    assert firings == firings_by_concept(out.top_indices, out.top_values, offset=4)


def test_identical_encoders_give_zero_difference(pcd, tiny_model_dir):
    encoders = {"before": pcd.encoder.W_enc, "after": copy.deepcopy(pcd.encoder.W_enc)}
    result = concept_fidelity(pcd, encoders, CONCEPTS, LABELS, _cfg(tiny_model_dir))
    assert result["n_concepts"] >= 5
    assert result["difference"] == 0.0 and result["difference_ci95"] == [0.0, 0.0]
    assert all(row["before"] == row["after"] for row in result["per_concept"])
    assert result["before"] == result["after"] and 0.0 <= result["before"] <= 1.0
    assert result["label_windows"] == len(_fidelity_windows(pcd, 96))
    assert {row["id"] for row in result["per_concept"]} | {s["id"] for s in result["skipped"]} == set(CONCEPTS)


def test_swapped_rows_change_the_firings_and_the_scores(pcd, tiny_model_dir):
    """Concept c of the "after" encoder is concept c+16 of the pretrained one: its label no longer fits."""
    order = torch.arange(64)
    order[:16], order[16:32] = torch.arange(16, 32), torch.arange(16)
    encoders = {"before": pcd.encoder.W_enc, "after": _permuted(pcd.encoder.W_enc, order)}
    result = concept_fidelity(pcd, encoders, CONCEPTS, LABELS, _cfg(tiny_model_dir))
    assert result["n_concepts"] >= 3
    assert any(row["before"] != row["after"] for row in result["per_concept"])
    assert result["difference"] == pytest.approx(result["after"] - result["before"], abs=1e-6)
    low, high = result["difference_ci95"]
    assert low <= result["difference"] <= high and low < high


def test_only_the_changed_concept_changes(pcd, tiny_model_dir):
    """Swapping rows 0 and 40 moves concept 0 only: every other concept fires where it did, and the negatives
    are shared, so its two AUROCs are equal."""
    order = torch.arange(64)
    order[0], order[40] = 40, 0
    encoders = {"before": pcd.encoder.W_enc, "after": _permuted(pcd.encoder.W_enc, order)}
    result = concept_fidelity(pcd, encoders, CONCEPTS, LABELS, _cfg(tiny_model_dir))
    rows = {row["id"]: row for row in result["per_concept"]}
    assert rows[0]["before"] != rows[0]["after"]
    assert all(row["before"] == row["after"] for c, row in rows.items() if c != 0) and len(rows) >= 5


def test_rare_and_unlabelled_concepts_are_skipped_and_listed(pcd, tiny_model_dir):
    firing = _cfg(tiny_model_dir)
    silenced = copy.deepcopy(pcd.encoder.W_enc)
    with torch.no_grad():
        silenced.bias[0] = -1e4  # concept 0 never fires after: it needs min_examples under both encoders
    labels = {c: LABELS[c] for c in CONCEPTS if c != 1}
    result = concept_fidelity(pcd, {"before": pcd.encoder.W_enc, "after": silenced}, CONCEPTS, labels, firing)
    why = {s["id"]: s["why"] for s in result["skipped"]}
    assert "0 after" in why[0] and why[1] == "no label"
    assert {row["id"] for row in result["per_concept"]}.isdisjoint(why)
    assert result["n_concepts"] == len(CONCEPTS) - len(why)

    nothing = concept_fidelity(pcd, {"before": silenced, "after": silenced}, [0], LABELS, firing)
    assert nothing["n_concepts"] == 0 and nothing["difference"] is None and [s["id"] for s in nothing["skipped"]] == [0]


def test_a_concept_that_fires_everywhere_is_skipped_not_looped_on(pcd, tiny_model_dir):
    # An RL offset can push a concept into every token's top-k: no silent token is left as a negative.
    everywhere = copy.deepcopy(pcd.encoder.W_enc)
    with torch.no_grad():
        everywhere.bias[2] = 1e4
    result = concept_fidelity(pcd, {"before": everywhere, "after": everywhere}, [2, 3], LABELS, _cfg(tiny_model_dir))
    assert [s["id"] for s in result["skipped"]] == [2] and "fires almost everywhere" in result["skipped"][0]["why"]
    assert [row["id"] for row in result["per_concept"]] == [3]


@pytest.mark.parametrize("field, value", [
    ("label_windows", 1), ("score_positives", 0), ("score_negatives", 0), ("batch_size", 0),
    ("bootstrap_resamples", 0), ("simulator_method", "guess"),
])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        FidelityConfig(**{field: value})


def test_min_examples_below_score_positives_is_refused():
    with pytest.raises(ConfigError, match="min_examples"):
        FidelityConfig(min_examples=2, score_positives=5)


def test_encoder_of_the_wrong_shape_is_refused(pcd, tiny_model_dir):
    wrong = torch.nn.Linear(pcd.encoder.d_model, 8)
    with pytest.raises(ValueError, match="after"):
        concept_fidelity(pcd, {"before": pcd.encoder.W_enc, "after": wrong}, CONCEPTS, LABELS, _cfg(tiny_model_dir))
