"""Judged explanations per second of judge time, from `pcdrl train` run folders (their metrics.jsonl).

    OMP_NUM_THREADS=1 python scripts/run_rates.py runs/rlspeed/* --doc rl_step_rates
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))


def judge_rate(run: Path) -> dict:
    """Per run: judged explanations, judge seconds, step seconds, explanations per judge-second, and what ran."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "time/judge_s" in r]
    config = yaml.safe_load((run / "config.yaml").read_text().split("\n", 1)[-1])
    per_step = config["items_per_step"] * (config["grpo"]["group_size"] if config["algorithm"] == "grpo"
                                           else config["ppo"]["samples_per_item"])
    judge_s = sum(r["time/judge_s"] for r in steps)
    return {"run": run.name, "steps": len(steps), "judged": per_step * len(steps), "judge_s": judge_s,
            "step_s": sum(r["time/step_s"] for r in steps), "rate": per_step * len(steps) / judge_s if judge_s else 0.0,
            "rewards": config["rewards"], "dtype": config["judge"]["backend"].get("dtype", "float32"),
            "threads": config["threads"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--doc", default="", help="write the table into this docs/benchmarks.md section key")
    parser.add_argument("--made-by", default="", help="how the runs were made (a command), written above the table")
    args = parser.parse_args()
    rates = [judge_rate(run) for run in args.runs]
    base = rates[0]["rate"]
    lines = [f"`python scripts/run_rates.py {' '.join(str(r) for r in args.runs)}`", "",
             *([f"Runs made by: {args.made_by}", ""] if args.made_by else []),
             "| run | rewards | judge dtype | torch threads | judged | judge s | step s | explanations per judge-second "
             "| vs first |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rates:
        lines.append(f"| {r['run']} | {r['rewards']} | {r['dtype']} | {r['threads']} | {r['judged']} | "
                     f"{r['judge_s']:.0f} | {r['step_s']:.0f} | {r['rate']:.2f} | {r['rate'] / base:.2f}× |")
    print("\n".join(lines))
    if args.doc:
        from benchmarks_doc import update_section

        update_section(args.doc, "## Judge rate inside GRPO steps (scripts/run_rates.py)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
