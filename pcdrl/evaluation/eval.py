"""`pcdrl eval RUN [RUN ...]`: did RL make explanations more useful to a simulated human, and is it real?

    runs ─► the RL policies (one per seed) and the pretrained PCD they started from
    held-out items ─► S's activations, read once ─► greedy concept sets: pretrained, rl (per seed), random
    explanations × judges ─► each judge's probability for every option (journalled: a rerun resumes)
    controls: the same sets with shuffled labels and with paraphrased labels; label fidelity before/after RL
    ─► summary.json, table.md, examples.jsonl, plots/, report.html

Rows: prior (no explanation), random, pretrained, rl, oracle (S's actual output). Columns: the run's
training judge and its held-out judges. Intervals resample items, and seeds when several runs are given.
Formula runs (policy.kind=formulas) show formulas in the random, pretrained and rl rows instead
(pcdrl/evaluation/formula_rows.py); the rest is the same, but for the fidelity control (skipped, with a note).
"""
from __future__ import annotations

import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from pcdrl.behaviors.build import load_items
from pcdrl.behaviors.encoded import encode_items, load_labelled_pcd
from pcdrl.runtime.atomic import atomic_write_json, atomic_write_text
from pcdrl.runtime.journal import Journal, work_key
from pcdrl.runtime.progress import progress_bar
from pcdrl.runtime.rundir import RunDir
from pcdrl.pcd.autointerp import derangement
from pcdrl.pcd.stats import bootstrap_mean
from pcdrl.evaluation.eval_config import EvalConfig
from pcdrl.evaluation.eval_runs import RunRef, check_comparable, find_run, load_concept_policy
from pcdrl.evaluation.formula_evidence import example_evidence
from pcdrl.evaluation.formula_rows import formula_entry, formula_sets, formula_stats
from pcdrl.evaluation.matched_rows import add_matched_row, matched_runs, matched_shown
from pcdrl.evaluation.stats import paired_difference, verdicts
from pcdrl.evaluation.study_items import study_items, write_study_items
from pcdrl.evaluation.judge_eval import random_concept_sets, score_row
from pcdrl.simulators.config import JudgeConfig
from pcdrl.simulators.judge import Judge
from pcdrl.simulators.metrics import expected_accuracy
from pcdrl.simulators.paraphrase import paraphrase_label


@dataclass
class ConceptSets:
    """Greedy concept ids per held-out item, for every row that shows concepts."""

    pretrained: list[list[int]]
    rl: list[list[list[int]]]
    """One list per run (seed)."""
    random: list[list[int]]
    labels: dict[int, str]
    fidelity_encoders: dict[str, torch.nn.Linear]
    """W_enc before RL and the first run's RL encoder (LoRA merged, offsets as bias), for the fidelity control."""
    pcd: object


def evaluate(paths: list[str | Path], cfg: EvalConfig, out: str | Path) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started, out = time.time(), Path(out)
    runs = [find_run(p) for p in paths]
    check_comparable(runs)
    matched = matched_runs(runs[0], cfg.matched_concepts)  # refused here, before any model loads
    judges = cfg.judges or [runs[0].config.judge, *runs[0].config.heldout_judges]
    control_judges = _control_judges(cfg, judges)
    run_dir = RunDir(out, cfg, command="pcdrl eval " + " ".join(str(r.checkpoint) for r in runs))
    items = _held_out_items(runs[0], cfg)
    formulas = runs[0].config.policy.kind == "formulas"
    if formulas:
        sets = formula_sets(runs, items, cfg.seed)
        items = sets.items  # those with a true conjunction (formula_rows.py)
    else:
        sets = concept_sets(runs, items, cfg.seed)
    shown = _shown(sets, cfg, formula_entry if formulas else _concept_entry)
    rows = _row_names(cfg, len(runs))
    if matched:  # the concept-set runs' greedy sets on the formula rows' items (matched_rows.py)
        concept_rows = matched_shown(matched, sets)
        shown.update(concept_rows)
        rows["main"] += list(concept_rows)

    answers: dict[str, dict[str, list[dict]]] = {}
    with Journal(out / "scores.jsonl") as journal, progress_bar() as bar:
        total = sum(len(rows["main"]) + (len(rows["controls"]) if j.name in control_judges else 0) for j in judges)
        task = bar.add_task("eval", total=total * len(items), status="")
        for judge_cfg in judges:
            names = rows["main"] + (rows["controls"] if judge_cfg.name in control_judges else [])
            judge = Judge(judge_cfg)
            try:
                answers[judge_cfg.name] = {row: score_row(judge, judge_cfg, row, items, shown, journal,
                                                          cfg.items_per_call, bar, task) for row in names}
            finally:
                judge.close()
            run_dir.log({"stage": "judge_done", "judge": judge_cfg.name, "items": len(items)})

    summary = summarize(items, answers, runs, judges, cfg)
    used = sets.concept_ids() if formulas else (sets.pretrained, sets.rl)
    summary["concept_usage"], summary["labels"] = _usage(*used, sets.labels)
    if formulas:
        summary["formulas"] = formula_stats(sets, runs[0].config.formula.truth)
    elif "fidelity" in cfg.controls and cfg.fidelity_concepts:
        summary["controls"]["fidelity"] = _fidelity(sets, runs[0], cfg, out)
    summary["controls"]["verdicts"] = verdicts(summary)
    if formulas:
        add_matched_row(summary, answers, shown, sets, matched, runs[0], cfg.bootstrap_resamples, cfg.seed)
    summary["wall_seconds"] = round(time.time() - started, 1)
    examples = _examples(items, shown, answers, cfg.examples)
    if formulas:  # per literal, where it holds on the item (report.html shows it under each formula)
        found = example_evidence(sets, [e["id"] for e in examples])
        examples = [{**e, "evidence": found[e["id"]]} for e in examples]
    _write_outputs(out, runs, summary, examples)
    # Every item with every main row's explanation and judge answers: what `pcdrl study` serves to people.
    write_study_items(out, study_items(items, rows["main"], shown, answers, judges, runs[0].config.judge.name,
                                       {k: summary[k] for k in ("runs", "seeds", "split", "families", "n_items")}))
    run_dir.write_summary(summary)
    run_dir.close()
    return summary


# --- inputs ----------------------------------------------------------------------------------


def _control_judges(cfg: EvalConfig, judges: list[JudgeConfig]) -> set[str]:
    names = [j.name for j in judges]
    unknown = [n for n in cfg.control_judges if n not in names]
    if unknown:
        raise ValueError(f"control_judges: {unknown} are not among the judges {names}")
    return set(cfg.control_judges or names)


def _held_out_items(run: RunRef, cfg: EvalConfig) -> list[dict]:
    families = run.config.families
    items = [it for it in load_items(run.config.data, split=cfg.split) if it["family"] in families]
    if not items:
        raise ValueError(f"{run.config.data} has no '{cfg.split}' items in families {families}")
    if cfg.max_items and len(items) > cfg.max_items:
        random.Random(cfg.seed).shuffle(items)
        items = sorted(items[: cfg.max_items], key=lambda it: it["id"])
    return items


def concept_sets(runs: list[RunRef], items: list[dict], seed: int) -> ConceptSets:
    """Read S once for all items; each run's policy and the pretrained encoder pick their greedy top-k."""
    config = runs[0].config
    labelled = load_labelled_pcd(config.pcd)
    pooled = encode_items(labelled, items, config.data).pooled
    rl_sets, after = [], None
    for run in runs:
        policy = load_concept_policy(run, labelled.pcd.encoder, labelled.allowed)
        rl_sets.append(policy.greedy(pooled).tolist())
        after = after or policy.merged_linear()
        if run is runs[0]:
            with policy.pretrained():
                pretrained = policy.greedy(pooled).tolist()
    drawn = random_concept_sets(items, labelled.labels, config.policy.k, seed)
    before = labelled.pcd.encoder.W_enc
    return ConceptSets(pretrained, rl_sets, drawn, labelled.labels, {"before": before, "after": after}, labelled.pcd)


def _label_maps(labels: dict[int, str], seed: int) -> dict[str, dict[int, str]]:
    ids = sorted(labels)
    moved = derangement(len(ids), seed)
    return {"": labels,
            "/shuffled": {c: labels[ids[j]] for c, j in zip(ids, moved)},
            "/paraphrased": {c: paraphrase_label(label) for c, label in labels.items()}}


def _label_controls(cfg: EvalConfig) -> list[str]:
    """The controls that rescore concept rows with other labels (shuffled_labels, paraphrased_labels)."""
    return [c for c in cfg.controls if c.endswith("_labels")]


def _row_suffix(control: str) -> str:
    """A label control's rows are named after the row they rescore: pretrained/shuffled, rl/0/paraphrased."""
    return "/" + control.removesuffix("_labels")


def _concept_entry(ids: list[int], labels: dict[int, str]) -> dict:
    return {"concepts": ids, "labels": [labels[c] for c in ids]}


def _shown(sets, cfg: EvalConfig, entry=_concept_entry) -> dict[str, list[dict]]:
    """What every explaining row shows per item, keyed by row name (as judge_eval.score_row reads it):
    ``entry(x, labels)`` of each item's concept ids (ConceptSets) or formula (FormulaSets), under each label map."""
    maps = _label_maps(sets.labels, cfg.seed)
    suffixes = [""] + [_row_suffix(c) for c in _label_controls(cfg)]
    sources = {"random": sets.random, "pretrained": sets.pretrained,
               **{f"rl/{r}": run_sets for r, run_sets in enumerate(sets.rl)}}
    shown = {}
    for name, per_item in sources.items():
        for suffix in suffixes if name != "random" else [""]:
            shown[name + suffix] = [entry(x, maps[suffix]) for x in per_item]
    return shown


def _row_names(cfg: EvalConfig, n_runs: int) -> dict[str, list[str]]:
    main = []
    for row in cfg.rows:
        main += [f"rl/{r}" for r in range(n_runs)] if row == "rl" else [row]
    controls = [base + _row_suffix(c) for c in _label_controls(cfg)
                for base in ["pretrained", *[f"rl/{r}" for r in range(n_runs)]]]
    return {"main": main, "controls": controls}


# --- numbers ---------------------------------------------------------------------------------


def _accuracy(items: list[dict], answers: list[dict]) -> torch.Tensor:
    return torch.tensor([expected_accuracy(a["scores"], it["answer"]) for a, it in zip(answers, items)])


def _matrix(items, rows: dict[str, list[dict]], base: str) -> torch.Tensor | None:
    """[runs, items] accuracies of a row. The rl rows (rl/0, rl/1/shuffled, ...) stack one line per run."""
    if base in rows:
        return _accuracy(items, rows[base])[None]
    suffix = base.removeprefix("rl")
    pattern = re.compile(rf"rl/\d+{re.escape(suffix)}")
    lines = [_accuracy(items, rows[name]) for name in rows if pattern.fullmatch(name)]
    return torch.stack(lines) if lines else None


def summarize(items, answers, runs: list[RunRef], judges: list[JudgeConfig], cfg: EvalConfig) -> dict:
    """accuracy/ci95[judge][row], gain[judge], controls[...][judge]."""
    n, seed = cfg.bootstrap_resamples, cfg.seed
    training = runs[0].config.judge.name
    summary = {
        "runs": [str(r.path) for r in runs], "checkpoints": [str(r.checkpoint) for r in runs],
        "seeds": [r.config.seed for r in runs], "n_items": len(items), "split": cfg.split,
        "families": runs[0].config.families,
        "judges": {j.name: {"model": j.backend.model, "role": "training" if j.name == training else "held-out"}
                   for j in judges},
        "rows": list(cfg.rows), "accuracy": {}, "ci95": {}, "gain": {},
        "controls": {c: {} for c in _label_controls(cfg)},
        "chance": round(sum(1 / len(it["options"]) for it in items) / len(items), 4),
    }
    for judge, rows in answers.items():
        matrices = {row: _matrix(items, rows, row) for row in cfg.rows}
        summary["accuracy"][judge], summary["ci95"][judge] = {}, {}
        for row, matrix in matrices.items():
            summary["accuracy"][judge][row], summary["ci95"][judge][row] = bootstrap_mean(matrix, n, seed)
        if {"rl", "pretrained"} <= set(cfg.rows):
            mean, ci = bootstrap_mean(paired_difference(matrices["rl"], matrices["pretrained"]), n, seed)
            summary["gain"][judge] = {"rl_minus_pretrained": mean, "ci95": ci}
        for control in summary["controls"]:
            suffix = _row_suffix(control)
            pre, rl = _matrix(items, rows, "pretrained" + suffix), _matrix(items, rows, "rl" + suffix)
            if pre is None or rl is None:
                continue  # this judge does not score the label controls (control_judges)
            entry = {"ci95": {}}
            (entry["pretrained"], entry["ci95"]["pretrained"]), (entry["rl"], entry["ci95"]["rl"]) = (
                bootstrap_mean(pre, n, seed), bootstrap_mean(rl, n, seed))
            entry["gain"], entry["gain_ci95"] = bootstrap_mean(paired_difference(rl, pre), n, seed)
            if control == "shuffled_labels":
                # Do real labels beat shuffled ones at all? If not, the judge reads no meaning into them.
                difference, ci = bootstrap_mean(paired_difference(matrices["pretrained"], pre), n, seed)
                entry["meaning"] = {"difference": difference, "ci95": ci}
            summary["controls"][control][judge] = entry
    return summary


def _usage(pretrained: list[list[int]], rl: list[list[list[int]]], labels: dict[int, str],
           top: int = 30) -> tuple[dict, dict]:
    """How many held-out items' explanations hold each concept (rl: summed over seeds)."""
    counts = {"pretrained": Counter(c for ids in pretrained for c in ids),
              "rl": Counter(c for run in rl for ids in run for c in ids)}
    usage = {name: {str(c): n for c, n in count.most_common(top)} for name, count in counts.items()}
    shown = {int(c) for name in usage for c in usage[name]}
    return usage, {str(c): labels[c] for c in sorted(shown)}


def _fidelity(sets: ConceptSets, run: RunRef, cfg: EvalConfig, out: Path) -> dict:
    """Auto-interp AUROC of the labels of the concepts RL uses most, under W_enc before and after RL.
    Cached in fidelity.json (keyed by the checkpoint and settings): it is the slowest control."""
    from dataclasses import asdict

    from pcdrl.pcd.fidelity import concept_fidelity

    used = Counter(c for ids in sets.rl[0] for c in ids)
    concepts = sorted(c for c, _ in used.most_common(cfg.fidelity_concepts))
    key = work_key(str(run.checkpoint.resolve()), concepts, asdict(cfg.fidelity))
    cache = out / "fidelity.json"
    if cache.is_file():
        import json

        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return saved["result"]
    result = concept_fidelity(sets.pcd, sets.fidelity_encoders, concepts, sets.labels, cfg.fidelity)
    result["run"] = str(run.checkpoint)
    atomic_write_json(cache, {"key": key, "result": result})
    return result


# --- outputs ---------------------------------------------------------------------------------


def _same(a: dict, b: dict) -> bool:
    """Two rows show the same explanation: the same formula, or the same set of concepts."""
    return a["formula"] == b["formula"] if "formula" in a else set(a["concepts"]) == set(b["concepts"])


def _examples(items, shown: dict[str, list[dict]], answers, limit: int) -> list[dict]:
    """Items where RL changed the explanation come first: they are the ones worth reading. A formula is shown as
    the one line the judge read."""
    pre, rl = shown["pretrained"], shown["rl/0"]
    order = sorted(range(len(items)), key=lambda i: (_same(rl[i], pre[i]), i))[:limit]
    examples = []
    for i in order:
        item = items[i]
        formulas = {"formulas": {"pretrained": pre[i]["text"], "rl": rl[i]["text"]}} if "formula" in pre[i] else {}
        examples.append({
            "id": item["id"], "family": item["family"], "question": item["question"], "options": item["options"],
            "answer": item["answer"], "text": item["text"], "behaviour": item["behaviour"],
            "labels": {"pretrained": [pre[i]["text"]] if formulas else pre[i]["labels"],
                       "rl": [rl[i]["text"]] if formulas else rl[i]["labels"]}, **formulas,
            "probs": {judge: {("rl" if row == "rl/0" else row): [round(p, 4) for p in rows[row][i]["probs"]]
                              for row in rows if "/" not in row or row == "rl/0"}
                      for judge, rows in answers.items()},
        })
    return examples


def _write_outputs(out: Path, runs: list[RunRef], summary: dict, examples: list[dict]) -> None:
    import json

    from pcdrl.evaluation.plots import plot_concept_usage, plot_reward_curves
    from pcdrl.evaluation.report import write_report
    from pcdrl.evaluation.tables import eval_table

    atomic_write_text(out / "examples.jsonl", "".join(json.dumps(e) + "\n" for e in examples))
    atomic_write_text(out / "table.md", eval_table(summary) + "\n")
    plots = {"reward_curve": plot_reward_curves([r.path for r in runs], out / "plots" / "reward_curve.png"),
             "concept_usage": plot_concept_usage(summary["concept_usage"], summary["labels"],
                                                 out / "plots" / "concept_usage.png")}
    write_report(out, summary, examples, {k: v for k, v in plots.items() if v is not None})
