"""`pcdrl label` end to end: labels land in the checkpoint and the summary carries both scores."""
import json

import pytest

from pcdrl.runtime.config_loader import load_config
from pcdrl.pcd.config import PretrainRunConfig
from pcdrl.pcd.labelling import label_checkpoint
from pcdrl.pcd.labels_config import LabelRunConfig
from pcdrl.pcd.pretrain import pretrain
from pcdrl.pcd.model import PCD
from pcdrl.pcd.output_labels import token_text


def _pretrained(tmp_path, overrides):
    cfg = load_config(PretrainRunConfig, None, overrides)
    pretrain(cfg, tmp_path / "run")
    return tmp_path / "run" / "pcd"


def _check_outputs(checkpoint, summary, n_labelled):
    for key in ("autointerp_score", "autointerp_score_shuffled", "autointerp_score_ci95", "concepts_labelled",
                "autointerp_output_score", "autointerp_output_score_shuffled", "autointerp_output_score_ci95"):
        assert summary[key] is not None, key
    assert summary["concepts_labelled"] == n_labelled
    assert 0.0 <= summary["autointerp_score"] <= 1.0 and 0.0 <= summary["autointerp_output_score"] <= 1.0
    concepts = json.loads((checkpoint / "concepts.json").read_text())
    scored = [c for c in concepts["concepts"] if c["scored"]]
    assert len(scored) == n_labelled
    assert all(0.0 <= c["autointerp_output_auroc"] <= 1.0 for c in scored)
    # label_all: every other concept that fires gets a cheap token label of the same kind, marked unscored.
    unscored = [c for c in concepts["concepts"] if not c["scored"]]
    assert unscored and all(c["label"] == f"{_on(c)}; {_then(c)}" for c in unscored)  # kind=both, as asked
    for entry in concepts["concepts"]:
        assert entry["output_label"].startswith("then ") and entry["token_label"].startswith("the words ")
        if entry["labeller"] == "tokens":
            assert entry["input_label"] == entry["token_label"]
        tokens = entry["output_tokens"]
        assert tokens and all(t["p_fires"] >= 0.0 and t["lift"] > 0 for t in tokens)
        assert [t["lift"] for t in tokens] == sorted((t["lift"] for t in tokens), reverse=True)
        assert len(entry["decoder_tokens"]) == 5
    entry = scored[0]
    assert entry["label"].strip() and entry["top_examples"] and "[[" in entry["top_examples"][0]
    assert "usage" in concepts, "pretraining's firing statistics must survive labelling"
    assert PCD.from_pretrained(checkpoint).concepts == concepts


def _on(entry):
    return "on " + ", ".join(f'"{w}"' for w in entry["input_tokens"][:2])


def _then(entry):
    return "then " + ", ".join(f'"{w}"' for w in list(dict.fromkeys(
        token_text(t["token"]) for t in entry["output_tokens"]))[:2])


def _tiny_checkpoint(tmp_path, tiny_model_dir, tiny_corpus):
    return _pretrained(tmp_path, [
        f"pcd.subject_model={tiny_model_dir}", "pcd.read_layer=1", "pcd.n_concepts=16", "pcd.k=4",
        f"corpus.path={tiny_corpus}", "corpus.max_windows=64", "window.prefix_len=4", "window.middle_len=4",
        "window.suffix_len=4", "train.steps=3", "train.batch_size=4", "train.baselines=[]", "train.eval_windows=4",
    ])


def _tiny_label_config(tiny_model_dir, *overrides):
    return load_config(LabelRunConfig, None, [
        "label.labeller=tokens", f"label.simulator_model={tiny_model_dir}", "label.label_windows=200",
        "label.max_concepts=5", "label.min_examples=5", *overrides,
    ])


def test_label_tiny_checkpoint_with_token_labels(tiny_model_dir, tiny_corpus, tmp_path, isolated_cache):
    checkpoint = _tiny_checkpoint(tmp_path, tiny_model_dir, tiny_corpus)
    summary = label_checkpoint(checkpoint, _tiny_label_config(tiny_model_dir, "label.kind=both"), tmp_path / "label")
    _check_outputs(checkpoint, summary, 5)
    assert json.loads((tmp_path / "label" / "summary.json").read_text()) == json.loads(json.dumps(summary))
    concepts = json.loads((checkpoint / "concepts.json").read_text())["concepts"]
    assert all(c["label"] == f"{_on(c)}; {_then(c)}" and c["kind"] == "both" for c in concepts)


def test_input_kind_keeps_the_labels_and_scores_of_before_output_labels(tiny_model_dir, tiny_corpus, tmp_path,
                                                                      isolated_cache):
    checkpoint = _tiny_checkpoint(tmp_path, tiny_model_dir, tiny_corpus)
    summary = label_checkpoint(checkpoint, _tiny_label_config(tiny_model_dir, "label.kind=input"), tmp_path / "label")
    scored = [c for c in json.loads((checkpoint / "concepts.json").read_text())["concepts"] if c["scored"]]
    # Pinned from the labeller before output-side labels existed (same checkpoint and config).
    assert [(c["id"], c["label"], c["autointerp_auroc"]) for c in scored] == [
        (0, 'the words "<space>", "a", "c"', 1.0), (4, 'the words "o", "n", "g"', 0.8799999952316284),
        (6, 'the words "<space>", "d", "e"', 1.0), (12, 'the words "o", "t", "e"', 0.4000000059604645),
        (15, 'the words "r", "g", "<space>"', 1.0),
    ]
    assert summary["autointerp_score"] == pytest.approx(0.8560000658035278, abs=1e-7)
    assert summary["autointerp_score_shuffled"] == pytest.approx(0.8399999737739563, abs=1e-7)
    assert summary["autointerp_pearson"] == pytest.approx(0.5522257685661316, abs=1e-5)
    # The output side is scored for input labels too, so kinds can be compared on the same cases.
    assert 0.0 <= summary["autointerp_output_score"] <= 1.0


@pytest.mark.real_model
def test_label_smollm2_checkpoint_with_the_explainer_lm(tmp_path):
    checkpoint = _pretrained(tmp_path, [
        "pcd.n_concepts=64", "pcd.k=8", "corpus.sources=[kjv]", "corpus.max_windows=64",
        "window.prefix_len=4", "window.middle_len=4", "window.suffix_len=4",
        "train.steps=2", "train.batch_size=4", "train.baselines=[]", "train.eval_windows=4",
    ])
    cfg = load_config(LabelRunConfig, None, [
        "label.labeller=lm", "label.label_windows=48", "label.max_concepts=3", "label.min_examples=3",
        "label.score_positives=3", "label.score_negatives=3", "label.explain_examples=4", "label.kind=both",
    ])
    summary = label_checkpoint(checkpoint, cfg, tmp_path / "label")
    _check_outputs(checkpoint, summary, 3)
    assert summary["explainer_model"] == "smollm2-135m-instruct"
