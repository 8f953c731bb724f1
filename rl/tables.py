"""Markdown tables of headline numbers, for the terminal and docs/benchmarks.md."""
from __future__ import annotations


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
