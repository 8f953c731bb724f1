"""The matched concept-set row of a formula eval: at the same explanation size, is a formula more useful to the
judge than a concept set?

    EvalConfig.matched_concepts ─► concept-set runs (policy.kind=concepts, policy.k near the formulas' mean size),
        checked against the formula run: same PCD, data and families (eval_runs.check_matched)
    the formula rows' kept items, pooled once (FormulaSets.pooled) ─► each concept run's greedy top-k, by its
        policy's `greedy` as a concept-run eval scores it ─► rows rl_concepts/0, rl_concepts/1, ... (labels)
    the judges' answers ─► `rl_concepts` accuracy (bootstrap over items, and runs when several) and the
        difference rl (formula) − rl_concepts, paired by item

The concept sets are shown as a concept run shows them (the template's concept header and labels), since that
is what those runs were trained to write for.
"""
from __future__ import annotations

import re

import torch

from pcdrl.evaluation.eval_runs import NotARunError, RunRef, check_matched, find_run, load_concept_policy
from pcdrl.evaluation.stats import paired_difference
from pcdrl.evaluation.tables import MATCHED_ROW, matched_title
from pcdrl.pcd.stats import bootstrap_mean
from pcdrl.simulators.metrics import expected_accuracy

ROW = MATCHED_ROW
NOT_REQUESTED = ("no concept-set row matched to the formulas' size: not requested (matched_concepts: concept-set "
                 "runs of this PCD and data, trained with policy.k near the rl mean size; docs/eval.md)")


def matched_runs(main: RunRef, paths: list[str]) -> list[RunRef]:
    """The concept-set runs named by `matched_concepts`, refused before anything is scored if they do not match."""
    if not paths:
        return []
    try:
        matched = [find_run(p) for p in paths]
    except NotARunError as err:
        raise NotARunError(f"matched_concepts: {err}") from None
    check_matched(main, matched)
    return matched


def matched_shown(runs: list[RunRef], sets) -> dict[str, list[dict]]:
    """Each concept run's greedy top-k on the formula rows' kept items (FormulaSets), keyed by row
    (`rl_concepts/<r>`), shown with the real labels."""
    shown = {}
    for r, run in enumerate(runs):
        policy = load_concept_policy(run, sets.pcd.encoder, sets.allowed)
        ids = policy.greedy(sets.pooled).tolist()
        shown[f"{ROW}/{r}"] = [{"concepts": x, "labels": [sets.labels[c] for c in x]} for x in ids]
    return shown


def _lines(items: list[dict], rows: dict[str, list[dict]], prefix: str) -> torch.Tensor:
    """[runs, items] accuracies of the rows `<prefix>/0`, `<prefix>/1`, ... (not their label controls)."""
    names = [name for name in rows if re.fullmatch(rf"{re.escape(prefix)}/\d+", name)]
    return torch.stack([torch.tensor([expected_accuracy(a["scores"], it["answer"]) for a, it in zip(rows[n], items)])
                        for n in names])


def run_difference(formulas: torch.Tensor, concepts: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """rl − rl_concepts per (run, item), and whether the runs were paired.

    As many concept runs as formula runs pair seed i with seed i, and one run on either side is broadcast: the
    bootstrap then resamples runs and items, and the interval covers the seeds' spread. Other counts do not pair;
    the difference is then of the per-item means over runs, and its interval covers items only."""
    if len(formulas) == len(concepts) or 1 in (len(formulas), len(concepts)):
        return paired_difference(formulas, concepts), True
    return paired_difference(formulas.mean(0), concepts.mean(0)), False


def add_matched_row(summary: dict, answers: dict, shown: dict[str, list[dict]], sets, runs: list[RunRef],
                    main: RunRef, resamples: int, seed: int) -> None:
    """Put the `rl_concepts` row into a formula eval's summary: its accuracy and interval per judge, the difference
    rl − rl_concepts (`formula_vs_concepts`), its size and share true next to the formulas' (`formulas`), and a
    verdict. `sets` are the formula rows (FormulaSets), `main` the first formula run. Without matched runs, only a
    note that the row was not requested."""
    stats, items = summary["formulas"], sets.items
    if not runs:
        stats["notes"].append(NOT_REQUESTED)
        return
    k = runs[0].config.policy.k  # the runs are seeds of one experiment: one policy
    at = summary["rows"].index("rl") + 1 if "rl" in summary["rows"] else len(summary["rows"])
    summary["rows"].insert(at, ROW)
    summary["formula_vs_concepts"], paired = {}, True
    for judge, rows in answers.items():
        concepts = _lines(items, rows, ROW)
        summary["accuracy"][judge][ROW], summary["ci95"][judge][ROW] = bootstrap_mean(concepts, resamples, seed)
        difference, paired = run_difference(_lines(items, rows, "rl"), concepts)
        mean, ci = bootstrap_mean(difference, resamples, seed)
        summary["formula_vs_concepts"][judge] = {"rl_minus_rl_concepts": mean, "ci95": ci}
        summary["controls"]["verdicts"].append(_verdict(judge, summary["judges"][judge]["role"], k, mean, ci))

    names = [name for name in shown if name.startswith(ROW + "/")]
    chosen = [entry["concepts"] for name in names for entry in shown[name]]
    true = [bool(sets.fired[i % len(items), ids].all()) for i, ids in enumerate(chosen)]
    stats["mean_size"][ROW] = round(sum(map(len, chosen)) / len(chosen), 4)
    stats["true_share"][ROW] = round(sum(true) / len(true), 4)
    stats["matched"] = {"runs": [str(r.path) for r in runs], "checkpoints": [str(r.checkpoint) for r in runs],
                        "seeds": [r.config.seed for r in runs], "k": k, "rl_mean_size": stats["mean_size"]["rl"],
                        "seeds_paired": paired}
    note = (f"{ROW}: the greedy top-{k} concept sets of {len(runs)} concept-set run(s) (policy.k={k}), against "
            f"the rl formulas' mean size {stats['mean_size']['rl']:.2f}; share true = all its concepts fired")
    if not paired:
        note += (f"; {len(runs)} concept runs do not pair with {len(summary['runs'])} formula runs, so the "
                 "rl − rl_concepts interval covers items only (give one concept run per formula run, or one)")
    if any(r.config.judge != main.config.judge for r in runs):
        note += (f"; the concept run(s) trained with another judge than {main.path} ({main.config.judge.name}): "
                 "the comparison mixes the explanation's kind with its training judge")
    stats["notes"].append(note)


def _verdict(judge: str, role: str, k: int, mean: float, ci: list[float]) -> str:
    text = f"{mean:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"
    if ci[0] > 0:
        return f"{judge} ({role}): formulas beat concept sets of size {k}: rl − {matched_title(k)} {text}."
    if ci[1] < 0:
        return f"{judge} ({role}): concept sets of size {k} beat formulas: rl − {matched_title(k)} {text}."
    return f"{judge} ({role}): no measurable difference between formulas and {matched_title(k)}: {text} holds zero."
