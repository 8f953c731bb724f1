"""A tiny labelled PCD and a behaviour dataset with all three families, shared by the rl tests."""
import json
import os

import pytest

from behaviors.build import build_dataset
from behaviors.config import DataBuildConfig
from configs.loader import load_config
from pcd.config import PretrainRunConfig
from pcd.labelling import label_checkpoint
from pcd.labels_config import LabelRunConfig
from pcd.pretrain import pretrain


@pytest.fixture(scope="session")
def pipeline(tiny_model_dir, tmp_path_factory):
    """A tiny labelled PCD and a dataset with all three families, built once for this module."""
    root = tmp_path_factory.mktemp("pipeline")
    os.environ["PCDRL_CACHE"] = str(root / "cache")
    import random

    rng = random.Random(0)
    words = "the cat sat on a mat while dogs ran in parks and birds sang over old red roofs 7 12".split()
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(40)) for _ in range(80)))
    pretrain(load_config(PretrainRunConfig, None, [
        f"pcd.subject_model={tiny_model_dir}", "pcd.read_layer=1", "pcd.n_concepts=16", "pcd.k=4",
        f"corpus.path={corpus}", "corpus.max_windows=64", "window.prefix_len=4", "window.middle_len=4",
        "window.suffix_len=4", "train.steps=2", "train.batch_size=4", "train.baselines=[]", "train.eval_windows=4",
    ]), root / "pretrain")
    pcd = root / "pretrain" / "pcd"
    label_checkpoint(pcd, load_config(LabelRunConfig, None, [
        "label.labeller=tokens", f"label.simulator_model={tiny_model_dir}", "label.label_windows=200",
        "label.max_concepts=3", "label.min_examples=3", "label.score_positives=3", "label.score_negatives=3",
    ]), root / "label")
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(f"{q} {i} about {w}?" for q in ("question", "ask") for i, w in enumerate(words)))
    audit = root / "audit.jsonl"
    audit.write_text("\n".join(json.dumps(x) for x in [
        {"prompt": "say a number", "checker": "length_bucket", "split": "test"},
        {"prompt": "pick", "question": "Which?", "options": ["red", "blue", "green"], "answer": "blue", "split": "test"},
        {"prompt": "pick again", "question": "Yes?", "options": ["Yes", "No"], "answer": 0, "split": "train"},
    ]))
    data_cfg = load_config(DataBuildConfig, None, [
        f"subject_model={tiny_model_dir}", "layer=1", f"pcd={pcd}", f"generation.model={tiny_model_dir}",
        f"continuation.corpus.path={corpus}", "continuation.n_items=40", "continuation.prefix_len=4",
        "continuation.middle_len=4", "continuation.continuation_tokens=3", f"attributes.prompts={prompts}",
        "attributes.checkers=[length_bucket,contains_number,refusal]", "attributes.max_new_tokens=6",
        "attributes.min_items=1", "attributes.read_last=3", f"audit_files=[{audit}]", "split.heldout_attributes=[]", "split.test_fraction=0.5",
    ])
    summary = build_dataset(data_cfg, root / "data")
    return {"root": root, "pcd": pcd, "data": root / "data", "summary": summary, "model": tiny_model_dir}


