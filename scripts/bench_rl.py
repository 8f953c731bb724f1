"""Where an RL step's time goes: sampling, judge scoring, reward, update (policy forward + backward).

Runs `pcdrl train` for a few steps on the real quickstart models and reads the per-phase times
every step logs (`time/*_s` in metrics.jsonl). The overhead ratio is step time divided by
(judge + update): what the loop costs beyond the two forward/backward passes it cannot avoid.

    OMP_NUM_THREADS=1 python scripts/bench_rl.py --config configs/rl/grpo_concepts.yaml --steps 4
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks_doc import machine, update_section  # noqa: E402
from pcdrl.runtime.config_loader import load_config  # noqa: E402
from pcdrl.rl.train_config import RLTrainConfig  # noqa: E402
from pcdrl.rl.trainer import train  # noqa: E402

PHASES = ("sample", "judge", "reward", "update")


def phase_table(records: list[dict]) -> tuple[list[str], float]:
    """Median seconds per phase over the steps after the first (which fills the judge's calibration cache)."""
    steady = records[1:] or records
    step = statistics.median(r["time/step_s"] for r in steady)
    rows = []
    for phase in PHASES:
        seconds = statistics.median(r.get(f"time/{phase}_s", 0.0) for r in steady)
        rows.append(f"| {phase} | {seconds:.3f} | {seconds / step:.1%} |")
    other = step - sum(statistics.median(r.get(f"time/{p}_s", 0.0) for r in steady) for p in PHASES)
    rows.append(f"| other (logging, checkpoint) | {other:.3f} | {other / step:.1%} |")
    core = statistics.median(r["time/judge_s"] + r["time/update_s"] for r in steady)
    return rows, step / core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/rl/grpo_concepts.yaml")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, as for pcdrl train")
    args = parser.parse_args()
    threads = int(os.environ["OMP_NUM_THREADS"])
    torch.set_num_threads(threads)
    overrides = [f"steps={args.steps}", "heldout_judges=[]", "max_eval_items=8", f"threads={threads}", *args.overrides]
    cfg = load_config(RLTrainConfig, args.config, overrides)
    cfg_steps = load_config(RLTrainConfig, args.config, []).steps
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_rl_"))
    train(cfg, out)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows, ratio = phase_table(records)
    samples = cfg.items_per_step * cfg.samples_per_item
    step = statistics.median(r["time/step_s"] for r in records[1:] or records)
    lines = [
        f"`OMP_NUM_THREADS={threads} python scripts/bench_rl.py --config {args.config} --steps {args.steps}"
        + (" " + " ".join(args.overrides) if args.overrides else "") + f"` ({machine()})",
        "",
        f"{cfg.algorithm.upper()}, {cfg.items_per_step} items × {cfg.samples_per_item} samples = {samples} "
        f"explanations of {cfg.policy.k} concepts per step; judge {cfg.judge.backend.model} "
        f"({cfg.judge.backend.kind}, batch {cfg.judge.backend.batch_size}). Median over steps 2..{args.steps}.",
        "",
        "| phase | seconds per step | share |",
        "|---|---|---|",
        *rows,
        "",
        f"Step: **{step:.2f} s** ({samples / step:.1f} explanations/s), so the config's {cfg_steps} steps take about "
        f"{cfg_steps * step / 60:.1f} min. Overhead ratio, step / (judge + update): **{ratio:.3f}** (target ≤ 1.2).",
    ]
    print("\n".join(lines))
    if not args.no_doc:
        update_section("bench_rl", "## RL step cost (scripts/bench_rl.py)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
