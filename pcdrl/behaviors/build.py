"""`pcdrl data build`: run S on every family, split, and save a datasets.Dataset with a summary.

S's generations are journalled in the run folder, so an interrupted build resumes without
regenerating, and the dataset is written atomically at the end.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from pcdrl.behaviors.attributes import build_attribute_items
from pcdrl.behaviors.audit import build_audit_items
from pcdrl.behaviors.config import DataBuildConfig
from pcdrl.behaviors.continuation import build_continuation_items, option_overlap, own_source_share
from pcdrl.behaviors.encoded import encode_items, load_labelled_pcd, pretrained_concepts
from pcdrl.behaviors.items import Item, answer_balance, assign_splits, check_item
from pcdrl.runtime.atomic import atomic_directory
from pcdrl.runtime.journal import Journal
from pcdrl.runtime.config_loader import ConfigError
from pcdrl.runtime.rundir import RunDir


def check_pcd_match(cfg: DataBuildConfig) -> None:
    """Items record S and the read layer; a PCD that reads another model or layer cannot explain them."""
    if not cfg.pcd:
        return
    from pcdrl.pcd.checkpoint import read_config

    pcd_cfg, _ = read_config(cfg.pcd)
    if pcd_cfg.subject_model != cfg.subject_model or pcd_cfg.read_layer != cfg.layer:
        raise ConfigError(
            f"pcd: {cfg.pcd} reads {pcd_cfg.subject_model} layer {pcd_cfg.read_layer}, but the config says "
            f"subject_model={cfg.subject_model} layer={cfg.layer}; make them agree"
        )


def make_generator(cfg: DataBuildConfig):
    from pcdrl.models.backends import make_backend

    model = cfg.generation.model if cfg.generation.model not in ("", "smollm2-135m-instruct") else cfg.subject_model
    return make_backend(replace(cfg.generation, model=model))


def build_items(cfg: DataBuildConfig, out: Path, backend, tokenizer) -> tuple[list[Item], dict[str, str]]:
    dropped: dict[str, str] = {}
    items: list[Item] = []
    with Journal(out / "generations.jsonl") as journal:
        if cfg.continuation.enabled:
            items += build_continuation_items(cfg.continuation, backend, tokenizer, cfg.subject_model, cfg.layer,
                                              journal, cfg.split.test_fraction, cfg.seed)
        if cfg.attributes.enabled:
            found, dropped = build_attribute_items(cfg.attributes, backend, tokenizer, cfg.subject_model, cfg.layer,
                                                   journal, cfg.seed)
            items += found
        for path in cfg.audit_files:
            items += build_audit_items(path, backend, tokenizer, cfg.subject_model, cfg.layer, journal)
    assign_splits(items, cfg.split.test_fraction, cfg.split.heldout_attributes, cfg.split.seed)
    for item in items:
        check_item(item)
    return items, dropped


def summarize(items: list[Item], dropped: dict[str, str], heldout_attributes: list[str]) -> dict:
    counts = Counter(f"{it.family}/{it.attribute}/{it.split}" for it in items)
    balance = answer_balance(items)
    # What a judge that always says "No" scores, per binary question type (the 70% bar).
    always_no = {key: shares.get("No", 0.0) for key, shares in balance.items() if set(shares) == {"Yes", "No"}}
    # Whole prompts are held out; a held-out *attribute* asks a new question, on every prompt (seen ones too).
    regular = [it for it in items if it.attribute not in heldout_attributes]
    train_groups = {it.group for it in regular if it.split == "train"}
    test_groups = {it.group for it in regular if it.split == "test"}
    return {
        "n_items": len(items),
        "counts": dict(sorted(counts.items())),
        "splits": dict(Counter(it.split for it in items)),
        "answer_balance": balance,
        "always_no_accuracy": always_no,
        "dropped_attributes": dropped,
        "test_only_attributes": sorted(
            {it.attribute for it in items if it.split == "test"} - {it.attribute for it in items if it.split == "train"}
        ),
        "groups_in_both_splits": len(train_groups & test_groups),
        "heldout_attribute_items_on_train_prompts": sum(
            it.attribute in heldout_attributes and it.group in train_groups for it in items),
    }


def continuation_summary(items: list[Item], cfg: DataBuildConfig) -> dict:
    """How copyable the continuation options are, and where the distractors come from (see docs/data.md)."""
    cont = [it for it in items if it.family == "continuation"]
    if not cont:
        return {}
    overlap = option_overlap([(it.options, it.answer, it.text) for it in cont])
    stats = {"items": len(cont), "true_option_shares_word_with_window": overlap["true_option"],
             "distractor_shares_word_with_window": overlap["distractor"]}
    if cfg.pcd:
        stats.update(_label_overlap(cont, cfg))
    sources = [json.loads(it.meta["option_sources"]) for it in cont]
    return {"option_overlap": stats, "distractor_sources": {
        "mode": cfg.continuation.distractors,
        "items_with_all_distractors_from_own_source": own_source_share(sources, [it.answer for it in cont])}}


def _label_overlap(cont: list[Item], cfg: DataBuildConfig) -> dict:
    """Options against the labels of each item's pretrained greedy concepts, as judge-eval shows them."""
    from pcdrl.pcd.concepts import labelled_concepts

    n_labelled = len(labelled_concepts(json.loads((Path(cfg.pcd) / "concepts.json").read_text())))
    if n_labelled == 0:
        return {"labels": f"skipped: {cfg.pcd} has no labelled concepts (run `pcdrl label`)"}
    k = min(cfg.overlap_concepts, n_labelled)
    labelled = load_labelled_pcd(cfg.pcd)
    greedy = pretrained_concepts(labelled, encode_items(labelled, [it.record() for it in cont]), k)
    shown = [" ".join(labelled.labels[c] for c in top) for top in greedy]
    overlap = option_overlap([(it.options, it.answer, labels) for it, labels in zip(cont, shown)])
    return {"true_option_shares_word_with_labels": overlap["true_option"],
            "distractor_shares_word_with_labels": overlap["distractor"], "labels_per_item": k}


def build_dataset(cfg: DataBuildConfig, out: str | Path) -> dict:
    from datasets import Dataset

    from pcdrl.models.loading import load_tokenizer

    from pcdrl.behaviors.audit import read_audit_files

    out = Path(out)
    check_pcd_match(cfg)
    read_audit_files(cfg.audit_files)  # a bad line or a shared id fails now, before S loads or anything is written
    run = RunDir(out, cfg, command="pcdrl data build")
    start = time.time()
    backend = make_generator(cfg)
    # The hf and vllm backends already hold S's tokenizer; an http backend may not.
    tokenizer = getattr(backend, "tokenizer", None) or load_tokenizer(cfg.subject_model)
    try:
        items, dropped = build_items(cfg, out, backend, tokenizer)
    finally:
        backend.close()
    if not items:
        raise ValueError("no items were built: enable a family (continuation, attributes) or give audit_files")
    with atomic_directory(out / "dataset") as tmp:
        Dataset.from_list([it.record() for it in items]).save_to_disk(str(tmp))
    summary = {**summarize(items, dropped, cfg.split.heldout_attributes), **continuation_summary(items, cfg),
               "subject_model": cfg.subject_model, "layer": cfg.layer,
               "wall_seconds": round(time.time() - start, 1), "dataset": str(out / "dataset")}
    run.write_summary(summary)
    run.close()
    return summary


def load_items(path: str | Path, split: str | None = None) -> list[dict]:
    """Items of a built dataset (a run folder or its dataset/ folder), optionally one split."""
    from datasets import load_from_disk

    path = Path(path)
    folder = path / "dataset" if (path / "dataset").exists() else path
    if not (folder / "dataset_info.json").exists():
        raise FileNotFoundError(
            f"{path} holds no behaviour dataset (expected {folder}/dataset_info.json); build one with `pcdrl data build`"
        )
    rows = load_from_disk(str(folder)).to_list()
    return [r for r in rows if split is None or r["split"] == split]
