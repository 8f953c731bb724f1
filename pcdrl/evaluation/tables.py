"""Markdown tables of headline numbers, for the terminal and docs/benchmarks.md."""
from __future__ import annotations

MATCHED_ROW = "rl_concepts"
"""A formula eval's concept-set row matched to the formulas' size (matched_rows.py)."""


def matched_title(k: int) -> str:
    return f"rl concept set (k={k})"


def judge_eval_table(summary: dict) -> str:
    """One table per judge: rows are explanation kinds, columns are families; accuracy [95% CI]."""
    blocks = []
    for judge, families in summary["accuracy"].items():
        names = [f for f in families if f != "all"] + (["all"] if "all" in families else [])
        rows = list(next(iter(families.values())))
        lines = [f"**judge: {judge}** (accuracy, 95% CI; chance: "
                 + ", ".join(f"{f} {summary['chance'][f]:.2f}" for f in names) + ")", "",
                 "| row | " + " | ".join(f"{f} (n={summary['n_items_per_family'][f]})" for f in names) + " |",
                 "|---|" + "---|" * len(names)]
        for row in rows:
            cells = []
            for family in names:
                low, high = summary["ci95"][judge][family][row]
                cells.append(f"{families[family][row]:.3f} [{low:.3f}, {high:.3f}]")
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        if summary.get("prior_uncalibrated_accuracy", {}).get(judge):
            raw = summary["prior_uncalibrated_accuracy"][judge]
            lines.append("| prior, uncalibrated | " + " | ".join(f"{raw[f]:.3f}" for f in names) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def eval_table(summary: dict) -> str:
    """`pcdrl eval`: rows are explanation kinds (and the label controls), columns are judges; then the verdicts."""
    judges = list(summary["accuracy"])
    cell = lambda value, ci: f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"  # noqa: E731
    signed = lambda value, ci: f"{value:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"  # noqa: E731
    header = [f"{j} ({summary['judges'][j]['role']})" for j in judges]
    lines = [f"Held-out accuracy on {summary['n_items']} '{summary['split']}' items ({', '.join(summary['families'])}), "
             f"{len(summary['runs'])} run(s), seeds {summary['seeds']}; chance {summary['chance']:.3f}; 95% CIs", "",
             "| row | " + " | ".join(header) + " |", "|---|" + "---|" * len(judges)]
    matched = (summary.get("formulas") or {}).get("matched")
    for row in summary["rows"]:
        name = matched_title(matched["k"]) if row == MATCHED_ROW and matched else row
        lines.append(f"| {name} | " + " | ".join(cell(summary["accuracy"][j][row], summary["ci95"][j][row])
                                               for j in judges) + " |")
    if summary["gain"]:
        lines.append("| **rl − pretrained** | " + " | ".join(
            signed(summary["gain"][j]["rl_minus_pretrained"], summary["gain"][j]["ci95"]) if j in summary["gain"]
            else "" for j in judges) + " |")
    if summary.get("formula_vs_concepts"):
        vs = summary["formula_vs_concepts"]
        lines.append(f"| **rl formula − {matched_title(matched['k'])}** | " + " | ".join(
            signed(vs[j]["rl_minus_rl_concepts"], vs[j]["ci95"]) if j in vs else "" for j in judges) + " |")
    for control, per_judge in summary["controls"].items():
        if control in ("fidelity", "verdicts") or not per_judge:
            continue
        name = control.replace("_", " ")
        for row in ("pretrained", "rl"):
            lines.append(f"| {row}, {name} | " + " | ".join(
                cell(per_judge[j][row], per_judge[j]["ci95"][row]) if j in per_judge else "not scored"
                for j in judges) + " |")
        lines.append(f"| rl − pretrained, {name} | " + " | ".join(
            signed(per_judge[j]["gain"], per_judge[j]["gain_ci95"]) if j in per_judge else "not scored"
            for j in judges) + " |")
    fidelity = summary["controls"].get("fidelity")
    if fidelity and fidelity.get("n_concepts"):
        lines += ["", f"Concept fidelity (auto-interp AUROC, {fidelity['n_concepts']} concepts RL uses most): before RL "
                  f"{cell(fidelity['before'], fidelity['before_ci95'])}, after {cell(fidelity['after'], fidelity['after_ci95'])}, "
                  f"difference {signed(fidelity['difference'], fidelity['difference_ci95'])}"]
    lines += formula_lines(summary.get("formulas"))
    verdicts = summary["controls"].get("verdicts", [])
    if verdicts:
        lines += ["", *[f"- {v}" for v in verdicts]]
    return "\n".join(lines)


def formula_lines(stats: dict | None) -> list[str]:
    """A formula run's formulas: mean size and share true per row, items left out, and what was not scored."""
    if not stats:
        return []
    rows = list(stats["mean_size"])
    lines = ["", f"Formulas (truth: {stats['truth']}), on {stats['n_items']} items:", "",
             "| row | mean size | share true |", "|---|---|---|",
             *[f"| {matched_title(stats['matched']['k']) if r == MATCHED_ROW else r} | {stats['mean_size'][r]:.2f} | "
               f"{stats['true_share'][r]:.3f} |" for r in rows]]
    if stats["skipped_items"]:
        lines += ["", f"{len(stats['skipped_items'])} held-out item(s) left out: no labelled concept fired on them."]
    return lines + ["", *[f"- {note}" for note in stats["notes"]]]
