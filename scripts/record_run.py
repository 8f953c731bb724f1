"""Copy a finished run's headline numbers into docs/benchmarks.md, with the command that made them.

    python scripts/record_run.py data RUN_DIR          # answer balance and counts of a `pcdrl data build`
    python scripts/record_run.py judge-eval RUN_DIR    # the accuracy tables of a `pcdrl judge-eval`
    python scripts/record_run.py eval RUN_DIR          # the table, controls and verdicts of a `pcdrl eval`
    python scripts/record_run.py quickstart OUT_DIR    # stage times and the eval table of a `pcdrl quickstart`
    python scripts/record_run.py sweep SWEEP_DIR       # the results table of a `pcdrl sweep`
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks_doc import update_section  # noqa: E402
from pcdrl.evaluation.tables import eval_table, judge_eval_table  # noqa: E402


def data_section(run: Path, summary: dict, command: str) -> str:
    lines = [f"`{command}` ({summary['n_items']} items, {summary['wall_seconds']} s)", "",
             "| family/attribute | train | test | answer shares | always-'No' accuracy |", "|---|---|---|---|---|"]
    keys = sorted({k.rsplit("/", 1)[0] for k in summary["counts"]})
    for key in keys:
        shares = summary["answer_balance"].get(key) or summary["answer_balance"].get("continuation/answer_position", {})
        shown = ", ".join(f"{a} {v:.2f}" for a, v in shares.items())
        no = summary["always_no_accuracy"].get(key)
        lines.append(f"| {key} | {summary['counts'].get(key + '/train', 0)} | {summary['counts'].get(key + '/test', 0)} "
                     f"| {shown} | {'' if no is None else f'{no:.2f}'} |")
    lines += ["", f"Test-only attributes (held out whole): {', '.join(summary['test_only_attributes']) or 'none'}. "
              f"Prompts or windows in both splits: {summary['groups_in_both_splits']}. The held-out attribute asks its new "
              f"question on every prompt: {summary['heldout_attribute_items_on_train_prompts']} of its items are on "
              "prompts seen in training with other questions."]
    for attribute, why in summary["dropped_attributes"].items():
        lines.append(f"- dropped `{attribute}`: {why}")
    return "\n".join(lines)


def judge_section(run: Path, summary: dict, command: str) -> str:
    lines = [f"`{command}` ({summary['n_items']} held-out items, {summary['wall_seconds']:.0f} s, 1 thread)", "",
             judge_eval_table(summary), "", "Accuracy by attribute (rows: prior / random / pretrained / oracle):", ""]
    for judge, attributes in summary["accuracy_by_attribute"].items():
        cells = "; ".join(f"{a}: " + " / ".join(f"{v:.2f}" for v in rows.values()) for a, rows in attributes.items())
        lines.append(f"- {judge}: {cells}")
    return "\n".join(lines)


def quickstart_section(out: Path, command: str) -> str:
    record = json.loads((out / "quickstart.json").read_text())
    summary = json.loads((out / "eval" / "summary.json").read_text())
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in record["stage_seconds"].items())
    return "\n".join([f"`{command}`", "", f"Stages (inside `pcdrl quickstart`): {stages}.", "", eval_table(summary)])


def _short(value: str) -> str:
    try:
        return f"{float(value):.3f}".rstrip("0").rstrip(".") if value else ""
    except ValueError:
        return value


def sweep_section(out: Path, command: str) -> str:
    import csv

    rows = list(csv.DictReader((out / "results.csv").open()))
    keys = [k for k in rows[0] if k.startswith(("weight_", "acc_"))]
    lines = [f"`{command}` ({len(rows)} trials)", "", "| trial | status | " + " | ".join(keys) + " | train s | front |",
             "|---|---|" + "---|" * (len(keys) + 2)]
    for row in rows:
        lines.append(f"| {row['name']} | {row['status']} | " + " | ".join(_short(row[k]) for k in keys)
                     + f" | {row['train_seconds']} | {'*' if row['pareto'] == '1' else ''} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["data", "judge-eval", "eval", "quickstart", "sweep"])
    parser.add_argument("run", type=Path)
    parser.add_argument("--command", default="", help="the command that made the run (default: from config.yaml)")
    parser.add_argument("--note", default="", help="a sentence to add under the numbers (conditions, caveats)")
    args = parser.parse_args()
    note = f"\n\n{args.note}" if args.note else ""
    if args.kind == "quickstart":
        body = quickstart_section(args.run, args.command or "make quickstart")
        update_section("quickstart", "## Quickstart, end to end (pcdrl quickstart)\n\n" + body + note)
        return
    if args.kind == "sweep":
        body = sweep_section(args.run, args.command or f"pcdrl sweep ... --out {args.run}")
        update_section(f"sweep_{args.run.name}", f"## Reward-weight sweep ({args.run.name})\n\n" + body + note)
        return
    summary = json.loads((args.run / "summary.json").read_text())
    first = (args.run / "config.yaml").read_text().splitlines()[0].lstrip("# ")
    command = args.command or first
    if args.kind == "eval":
        body = f"`{command}`\n\n" + eval_table(summary)
        update_section("eval", "## RL evaluation with controls (pcdrl eval)\n\n" + body + note)
    elif args.kind == "data":
        body = data_section(args.run, summary, command)
        update_section("data_build", "## Behaviour questions (pcdrl data build)\n\n" + body + note)
    else:
        body = judge_section(args.run, summary, command)
        update_section("judge_eval", "## Judges on held-out questions (pcdrl judge-eval)\n\n" + body + note)


if __name__ == "__main__":
    main()
