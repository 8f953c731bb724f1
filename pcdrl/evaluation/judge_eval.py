"""`pcdrl judge-eval`: how well each judge answers held-out questions under each kind of explanation.

Rows: no explanation (prior), random labelled concepts, the pretrained PCD's greedy top-k, and
the oracle (S's actual output). Every judge answer is journalled as it arrives, so an interrupted
run resumes from its partial results, and the summary holds accuracy[judge][family][row] with
95% bootstrap intervals over items.
"""
from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import torch

from pcdrl.behaviors.build import load_items
from pcdrl.behaviors.encoded import encode_items, load_labelled_pcd, pretrained_concepts
from pcdrl.runtime.journal import Journal, work_key
from pcdrl.runtime.progress import progress_bar
from pcdrl.runtime.rundir import RunDir
from pcdrl.pcd.stats import bootstrap_mean
from pcdrl.evaluation.judge_eval_config import JudgeEvalConfig
from pcdrl.simulators.config import JudgeConfig
from pcdrl.simulators.judge import Judge
from pcdrl.simulators.metrics import correct_logprob, expected_accuracy
from pcdrl.simulators.render import Explanation


def select_items(items: list[dict], per_family: int, seed: int) -> list[dict]:
    if per_family <= 0:
        return items
    by_family: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        by_family[item["family"]].append(item)
    chosen = []
    for family in sorted(by_family):
        members = sorted(by_family[family], key=lambda it: it["id"])
        random.Random(f"{seed}:{family}").shuffle(members)
        chosen += members[:per_family]
    return chosen


def random_concept_sets(items: list[dict], labels: dict[int, str], k: int, seed: int) -> list[list[int]]:
    """The `random` row: k labelled concepts per item, drawn by a seed and the item's id (stable under subsetting)."""
    ids = sorted(labels)
    return [random.Random(f"{seed}:{item['id']}").sample(ids, k) for item in items]


def concept_explanations(items: list[dict], pcd_path: str, k: int, seed: int,
                         data: str | Path | None = None) -> dict[str, list[dict]]:
    """For the random and pretrained rows: the concept ids and labels shown for each item."""
    labelled = load_labelled_pcd(pcd_path)
    labels = labelled.labels
    if len(labels) < k:
        raise ValueError(f"{pcd_path} has {len(labels)} labelled concepts, fewer than n_concepts_shown={k}; "
                         "run `pcdrl label` (label.label_all=true labels every active concept)")
    greedy = pretrained_concepts(labelled, encode_items(labelled, items, data), k)
    out: dict[str, list[dict]] = {"pretrained": [], "random": []}
    for top, drawn in zip(greedy, random_concept_sets(items, labels, k, seed)):
        out["pretrained"].append({"concepts": top, "labels": [labels[c] for c in top]})
        out["random"].append({"concepts": drawn, "labels": [labels[c] for c in drawn]})
    return out


def explanation_for(row: str, item: dict, shown: dict[str, list[dict]], index: int) -> Explanation | None:
    if row == "prior":
        return None
    if row == "oracle":
        return Explanation(oracle=item["behaviour"])
    entry = shown[row][index]
    if "formula" in entry:  # a formula row (pcdrl/evaluation/formula_rows.py): `text` is `to_text` of it
        return Explanation(formula=entry["text"])
    return Explanation(labels=tuple(entry["labels"]))


def score_row(judge: Judge, judge_cfg: JudgeConfig, row: str, items, shown, journal: Journal, chunk: int, bar, task):
    explanations = [explanation_for(row, it, shown, i) for i, it in enumerate(items)]
    identity = {k: v for k, v in asdict(judge_cfg).items() if k != "name"}
    # The prior row's answers are the calibration baseline itself (uniform after PMI); its keys say so.
    keys = [work_key(identity, judge.prompt(it["question"], e), it["options"], *(("baseline",) if e is None else ()))
            for it, e in zip(items, explanations)]
    # Identical prompts (the prior row's, say) are scored once: the key covers everything the answer depends on.
    todo = list({key: i for i, key in reversed(list(enumerate(keys))) if key not in journal}.values())[::-1]
    bar.update(task, status=f"{judge_cfg.name}/{row}")
    bar.advance(task, len(items) - len(todo))
    for start in range(0, len(todo), chunk):
        rows = todo[start : start + chunk]
        answers = judge.answer([items[i]["question"] for i in rows], [items[i]["options"] for i in rows],
                               [explanations[i] for i in rows])
        journal.put_many(
            (keys[i], {"probs": p, "scores": s, "raw": r})
            for i, p, s, r in zip(rows, answers.probs, answers.scores, answers.raw)
        )
        bar.advance(task, len(rows))
    return [journal.get(k) for k in keys]


def judge_eval(cfg: JudgeEvalConfig, out: str | Path) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.time()
    run = RunDir(out, cfg, command="pcdrl judge-eval")
    items = select_items(load_items(cfg.data, split=cfg.split), cfg.max_items_per_family, cfg.seed)
    if not items:
        raise ValueError(f"{cfg.data} has no items in split '{cfg.split}'")
    needs_concepts = {"random", "pretrained"} & set(cfg.rows)
    shown = concept_explanations(items, cfg.pcd, cfg.n_concepts_shown, cfg.seed, cfg.data) if needs_concepts else {}
    results: dict[str, dict[str, list[dict]]] = {}
    with Journal(Path(out) / "scores.jsonl") as journal, progress_bar() as bar:
        task = bar.add_task("judge-eval", total=len(items) * len(cfg.rows) * len(cfg.judges), status="")
        for judge_cfg in cfg.judges:
            judge = Judge(judge_cfg)
            try:
                results[judge_cfg.name] = {
                    row: score_row(judge, judge_cfg, row, items, shown, journal, cfg.items_per_call, bar, task)
                    for row in cfg.rows
                }
            finally:
                judge.close()
            run.log({"stage": "judge_done", "judge": judge_cfg.name, "items": len(items)})
    summary = summarize(items, results, cfg)
    summary.update(n_items=len(items), split=cfg.split, wall_seconds=round(time.time() - started, 1))
    _write_examples(Path(out), items, shown, results, cfg)
    run.write_summary(summary)
    run.close()
    return summary


def summarize(items: list[dict], results, cfg: JudgeEvalConfig) -> dict:
    """accuracy/ci95/mean_logprob[judge][family][row]; also by attribute, and the uncalibrated prior."""
    groups: dict[str, list[int]] = defaultdict(list)
    attributes: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[item["family"]].append(i)
        groups["all"].append(i)
        attributes[f"{item['family']}/{item['attribute']}"].append(i)
    out = {key: {} for key in ("accuracy", "ci95", "mean_logprob", "logprob_ci95", "accuracy_by_attribute")}
    out["prior_uncalibrated_accuracy"] = {}
    out["n_items_per_family"] = {family: len(idx) for family, idx in groups.items()}
    for judge, rows in results.items():
        for key in out:
            if key != "n_items_per_family":
                out[key][judge] = {}
        for family, idx in groups.items():
            for key in ("accuracy", "ci95", "mean_logprob", "logprob_ci95"):
                out[key][judge][family] = {}
            for row, answers in rows.items():
                acc = [expected_accuracy(answers[i]["scores"], items[i]["answer"]) for i in idx]
                logp = [correct_logprob(answers[i]["probs"], items[i]["answer"]) for i in idx]
                out["accuracy"][judge][family][row], out["ci95"][judge][family][row] = bootstrap_mean(
                    acc, cfg.bootstrap_resamples, cfg.seed)
                out["mean_logprob"][judge][family][row], out["logprob_ci95"][judge][family][row] = bootstrap_mean(
                    logp, cfg.bootstrap_resamples, cfg.seed)
            if "prior" in rows:
                raw = [expected_accuracy(rows["prior"][i]["raw"], items[i]["answer"]) for i in idx]
                out["prior_uncalibrated_accuracy"][judge][family] = round(sum(raw) / len(raw), 4)
        for attribute, idx in attributes.items():
            out["accuracy_by_attribute"][judge][attribute] = {
                row: round(sum(expected_accuracy(a[i]["scores"], items[i]["answer"]) for i in idx) / len(idx), 4)
                for row, a in rows.items()
            }
    out["chance"] = {family: round(sum(1 / len(items[i]["options"]) for i in idx) / len(idx), 4)
                     for family, idx in groups.items()}
    return out


def _write_examples(out: Path, items, shown, results, cfg: JudgeEvalConfig, per_family: int = 5) -> None:
    """A few items per family with every row's explanation and each judge's probabilities (for reading)."""
    import json

    from pcdrl.runtime.atomic import atomic_write_text

    lines, seen = [], defaultdict(int)
    for i, item in enumerate(items):
        if seen[item["family"]] >= per_family:
            continue
        seen[item["family"]] += 1
        record = {"id": item["id"], "question": item["question"], "options": item["options"],
                  "answer": item["answer"], "behaviour": item["behaviour"], "text": item["text"],
                  "labels": {row: shown[row][i]["labels"] for row in shown},
                  "probs": {j: {row: [round(p, 3) for p in a[i]["probs"]] for row, a in rows.items()}
                            for j, rows in results.items()}}
        lines.append(json.dumps(record))
    atomic_write_text(out / "examples.jsonl", "\n".join(lines) + "\n")
