"""Which labels help a judge predict S? `pcdrl judge-eval` for label kinds x distractor modes x judges.

Inputs come from `scripts/gpu_rl_signal_inputs.sh` (one PCD labelled three ways, continuation questions with
random and same-source distractors). Each (judge, kind, mode) is an ordinary judge-eval run folder under
--out; finished ones are reused and interrupted ones resume from their journal. Writes docs/benchmarks.md.

    OMP_NUM_THREADS=1 python scripts/bench_label_kinds.py --inputs runs/signal-inputs --out runs/label-kinds \\
        --items 300
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks_doc import machine, update_section  # noqa: E402
from pcdrl.runtime.config_loader import load_config  # noqa: E402
from pcdrl.evaluation.judge_eval import judge_eval  # noqa: E402
from pcdrl.evaluation.judge_eval_config import JudgeEvalConfig  # noqa: E402

KINDS = ("input", "output", "both")
MODES = ("random", "same_source")
JUDGES = {"smollm2": ("smollm2-135m-instruct", "[prior, random, pretrained]"),
          "gemma": ("gemma3-270m", "[prior, pretrained]")}


def run(judge: str, kind: str, mode: str, args) -> dict:
    out = Path(args.out) / f"{judge}-{kind}-{mode}"
    if (out / "summary.json").is_file():
        return json.loads((out / "summary.json").read_text())
    model, rows = JUDGES[judge]
    cfg = load_config(JudgeEvalConfig, "configs/eval/judge_eval.yaml", [
        f"data={args.inputs}/data-{mode}", f"pcd={args.inputs}/pcd-{kind}",
        f"judges=[{{name: {judge}, backend: {{kind: hf, model: {model}, batch_size: 8}}}}]", f"rows={rows}",
        f"max_items_per_family={args.items}", f"threads={args.threads}"])
    return judge_eval(cfg, out)


def cell(summary: dict, judge: str, row: str) -> str:
    acc, ci = summary["accuracy"][judge]["all"], summary["ci95"][judge]["all"]
    return f"{acc[row]:.3f} [{ci[row][0]:.3f}, {ci[row][1]:.3f}]" if row in acc else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default="runs/signal-inputs")
    parser.add_argument("--out", default="runs/label-kinds")
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--judges", default="smollm2,gemma")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    args.threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    judges = args.judges.split(",")
    lines = [f"`OMP_NUM_THREADS={args.threads} python scripts/bench_label_kinds.py --inputs {args.inputs} --out "
             f"{args.out} --items {args.items} --judges {args.judges}` ({machine()})", "",
             "Held-out continuation questions (4 options, chance 0.250); the PCD's greedy top-8 labels (`pretrained`) "
             "or 8 random labelled concepts (`random`), 95% bootstrap intervals over items.", "",
             "| judge | distractors | labels | items | random | pretrained | pretrained − prior |",
             "|---|---|---|---|---|---|---|"]
    for judge in judges:
        for mode in MODES:
            for kind in KINDS:
                summary = run(judge, kind, mode, args)
                acc = summary["accuracy"][judge]["all"]
                lines.append(f"| {judge} | {mode} | {kind} | {summary['n_items']} | {cell(summary, judge, 'random')} | "
                             f"{cell(summary, judge, 'pretrained')} | {acc['pretrained'] - acc['prior']:+.3f} |")
                print(lines[-1], flush=True)
    print("\n".join(lines))
    if not args.no_doc:
        update_section("bench_label_kinds",
                       "## Label kinds x distractors (scripts/bench_label_kinds.py)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
