"""Shared fixtures. Tiny models are built from a config and saved as real HF folders, so unit
tests exercise the same load-by-path code as real models; `real_model` tests use SmolLM2."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PCDRL_NO_PROGRESS", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import json

import pytest
import torch

torch.set_num_threads(1)


def _tiny_model_script():
    """scripts/tiny_model.py, which `make test-wheel` also runs outside the repo: one tiny model for both."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("tiny_model", Path(__file__).resolve().parents[1] / "scripts" / "tiny_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_TINY = _tiny_model_script()
build_tiny_model_folder = _TINY.build_tiny_model_folder
"""A 4-layer, 32-wide Llama with a character-level tokenizer, saved as a real HF folder."""


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture(scope="session")
def tiny_model_dir_64(tmp_path_factory):
    """64 wide: bitsandbytes' AVX-512 4-bit CPU kernel packs weights in blocks of 64 input features, so the
    32-wide tiny model fails there with a reshape error (its AVX2 path accepts any width)."""
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny-llama-64"), hidden=64))


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A fresh $PCDRL_CACHE for tests that must not see (or pollute) the user's cache."""
    monkeypatch.setenv("PCDRL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tiny_corpus(tmp_path):
    """A local text file long enough for a few dozen small windows."""
    import random

    rng = random.Random(0)
    words = "the cat sat on a mat while dogs ran in parks and birds sang over old red roofs".split()
    lines = [" ".join(rng.choice(words) for _ in range(40)) for _ in range(60)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def tiny_pcd(tiny_model_dir):
    """A tiny PCD in eval mode whose decoder LoRA is non-zero (B starts at zero), so the adapter matters."""
    import torch

    from pcdrl.pcd.config import PCDConfig
    from pcdrl.pcd.model import PCD

    config = PCDConfig(subject_model=tiny_model_dir, read_layer=1, n_concepts=64, k=4, lora_rank=4, lora_dropout=0.0)
    pcd = PCD.create(config, seed=0)
    with torch.no_grad():
        for name, p in pcd.decoder.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return pcd.eval()


# A tiny labelled PCD and a behaviour dataset with all three families, shared by the rl, evaluation,
# sweeps and cli tests.
@pytest.fixture(scope="session")
def pipeline(tiny_model_dir, tmp_path_factory):
    """A tiny labelled PCD and a dataset with all three families, built once for this module."""
    from pcdrl.behaviors.build import build_dataset
    from pcdrl.behaviors.config import DataBuildConfig
    from pcdrl.runtime.config_loader import load_config
    from pcdrl.pcd.config import PretrainRunConfig
    from pcdrl.pcd.labelling import label_checkpoint
    from pcdrl.pcd.labels_config import LabelRunConfig
    from pcdrl.pcd.pretrain import pretrain

    root = tmp_path_factory.mktemp("pipeline")
    os.environ["PCDRL_CACHE"] = str(root / "cache")
    words = _TINY.WORDS
    corpus = _TINY.write_tiny_corpus(root / "corpus.txt")
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


