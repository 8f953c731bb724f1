"""`pcdrl label` end to end: labels land in the checkpoint and the summary carries both scores."""
import json

import pytest

from configs.loader import load_config
from pcd.config import PretrainRunConfig
from pcd.labelling import label_checkpoint
from pcd.labels_config import LabelRunConfig
from pcd.pretrain import pretrain
from pcd.model import PCD


def _pretrained(tmp_path, overrides):
    cfg = load_config(PretrainRunConfig, None, overrides)
    pretrain(cfg, tmp_path / "run")
    return tmp_path / "run" / "pcd"


def _check_outputs(checkpoint, summary, n_labelled):
    for key in ("autointerp_score", "autointerp_score_shuffled", "autointerp_score_ci95", "concepts_labelled"):
        assert summary[key] is not None, key
    assert summary["concepts_labelled"] == n_labelled
    assert 0.0 <= summary["autointerp_score"] <= 1.0
    concepts = json.loads((checkpoint / "concepts.json").read_text())
    scored = [c for c in concepts["concepts"] if c["scored"]]
    assert len(scored) == n_labelled
    # label_all: every other concept that fires gets a cheap token label, marked unscored.
    assert all(c["label"].startswith("the words ") for c in concepts["concepts"] if not c["scored"])
    entry = scored[0]
    assert entry["label"].strip() and entry["top_examples"] and "[[" in entry["top_examples"][0]
    assert "usage" in concepts, "pretraining's firing statistics must survive labelling"
    assert PCD.from_pretrained(checkpoint).concepts == concepts


def test_label_tiny_checkpoint_with_token_labels(tiny_model_dir, tiny_corpus, tmp_path, isolated_cache):
    checkpoint = _pretrained(tmp_path, [
        f"pcd.subject_model={tiny_model_dir}", "pcd.read_layer=1", "pcd.n_concepts=16", "pcd.k=4",
        f"corpus.path={tiny_corpus}", "corpus.max_windows=64", "window.prefix_len=4", "window.middle_len=4",
        "window.suffix_len=4", "train.steps=3", "train.batch_size=4", "train.baselines=[]", "train.eval_windows=4",
    ])
    cfg = load_config(LabelRunConfig, None, [
        "label.labeller=tokens", f"label.simulator_model={tiny_model_dir}", "label.label_windows=200",
        "label.max_concepts=5", "label.min_examples=5",
    ])
    summary = label_checkpoint(checkpoint, cfg, tmp_path / "label")
    _check_outputs(checkpoint, summary, 5)
    assert json.loads((tmp_path / "label" / "summary.json").read_text()) == json.loads(json.dumps(summary))
    labels = [c["label"] for c in json.loads((checkpoint / "concepts.json").read_text())["concepts"]]
    assert all(label.startswith("the words ") for label in labels)


@pytest.mark.real_model
def test_label_smollm2_checkpoint_with_the_explainer_lm(tmp_path):
    checkpoint = _pretrained(tmp_path, [
        "pcd.n_concepts=64", "pcd.k=8", "corpus.sources=[kjv]", "corpus.max_windows=64",
        "window.prefix_len=4", "window.middle_len=4", "window.suffix_len=4",
        "train.steps=2", "train.batch_size=4", "train.baselines=[]", "train.eval_windows=4",
    ])
    cfg = load_config(LabelRunConfig, None, [
        "label.labeller=lm", "label.label_windows=48", "label.max_concepts=3", "label.min_examples=3",
        "label.score_positives=3", "label.score_negatives=3", "label.explain_examples=4",
    ])
    summary = label_checkpoint(checkpoint, cfg, tmp_path / "label")
    _check_outputs(checkpoint, summary, 3)
    assert summary["explainer_model"] == "smollm2-135m-instruct"
