"""The human-study page, measured with simulated participants on the real default judge (SmolLM2), on loopback.

1. Match: a study on each eval folder, one full block of simulated participants (every (item, condition) answered
   once, through the HTTP pages), then `pcdrl study report`: its simulated-participant accuracy per condition
   beside the eval's own summary.json. Give two evals of one checkpoint, one with the default bfloat16 judge and one
   with the judge in float32: a bfloat16 judge's scores move with the batch it is scored in, float32's do not.
2. Load: a second study on the same eval, 20 simulated participants at once (20 concurrent HTTP clients, one
   batched judge call per step): wall time, request latency, 429s, and whether every accepted answer is stored
   exactly once.

    python scripts/bench_study.py --eval runs/study-bench/eval runs/study-bench/eval-fp32 --threads 1

Each eval folder must hold items.json (any `pcdrl eval` of this version writes it). The studies go to
EVAL/../study-match-NAME and FIRST_EVAL/../study-load (reused when they exist: a rerun reports the stored answers).
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from benchmarks_doc import machine, update_section  # noqa: E402
from pcdrl.runtime.config_loader import from_dict  # noqa: E402
from pcdrl.simulators.config import JudgeConfig  # noqa: E402
from pcdrl.simulators.judge import Judge  # noqa: E402
from pcdrl.study.config import StudyConfig  # noqa: E402
from pcdrl.study.report import write_study_report  # noqa: E402
from pcdrl.study.serve import StudyServer, open_study  # noqa: E402
from pcdrl.study.simulate import simulate  # noqa: E402

DISPLAY = {"prior": "no explanation (prior)", "rl/0": "rl"}


def _judge(store) -> Judge:
    return Judge(from_dict(JudgeConfig, store.frozen["judges"][store.training_judge]["config"]))


def _run(store, participants: int, concurrency: int) -> dict:
    """simulate()'s result; a rerun reads the one saved with the answers (bench-simulate.json) instead."""
    saved = store.folder / "bench-simulate.json"
    if store.answers():
        return json.loads(saved.read_text()) if saved.is_file() else {"reused": True}
    judge = _judge(store)
    try:
        with StudyServer(store, quiet=True) as server:
            result = simulate(server.url, judge, participants, concurrency=concurrency)
    finally:
        judge.close()
    saved.write_text(json.dumps(result, indent=2))
    return result


def _dtype(store) -> str:
    return store.frozen["judges"][store.training_judge]["config"]["backend"]["dtype"]


def match(eval_dir: Path, folder: Path) -> tuple[str, dict]:
    # Starts are not the point here: one address starts a whole block of participants within seconds.
    store, _ = open_study(eval_dir, folder, StudyConfig(starts_per_minute=100000, answers_per_minute=100000))
    started = time.time()
    result = _run(store, store.block_size(), concurrency=20)
    dtype = _dtype(store)
    store.close()
    report = write_study_report(folder)
    summary = json.loads((eval_dir / "summary.json").read_text())
    agent, group = next(iter(report["simulated"].items()))
    judge = group["judge"]
    rows = ["| condition | `pcdrl eval` (summary.json) | simulated participants | difference | cells | tied cells "
            "| picks among the judge's top options |", "|---|---|---|---|---|---|---|"]
    for condition, entry in group["vs_eval"].items():
        row = "rl" if condition == "rl/0" else condition
        quoted = summary["accuracy"][judge].get(row)
        rows.append(f"| {DISPLAY.get(condition, condition)} | {quoted:.4f} | {entry['simulated_accuracy']:.4f} | "
                    f"{entry['simulated_accuracy'] - quoted:+.4f} | {entry['n_cells']} | {entry['tied_cells']} | "
                    f"{entry['top_choice_share']:.3f} |")
    text = (f"**Judge {judge} in {dtype}.** One full block of simulated participants ({agent}: "
            f"{group['n_started']} participants, "
            f"{group['n_answers']} answers) on `{eval_dir}` ({report['n_items']} items), through the HTTP pages; "
            f"{result.get('seconds', '?')} s for the simulation"
            + (" (an earlier run of this script; its answers are reused)" if "note" in result or result.get("reused")
               else f", {time.time() - started:.0f} s in all") + ".\n\n"
            + "\n".join(rows))
    return text, result


def load(eval_dir: Path, folder: Path, participants: int) -> tuple[str, dict]:
    store, _ = open_study(eval_dir, folder, StudyConfig(items_per_participant=20))
    result = _run(store, participants, concurrency=participants)
    db = sqlite3.connect(store.path)
    stored = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    distinct = db.execute("SELECT COUNT(*) FROM (SELECT DISTINCT participant, item FROM answers)").fetchone()[0]
    planned = sum(p["planned"] for p in store.participants())
    store.close()
    accepted = result.get("answers", stored)
    text = (f"{participants} simulated participants at once, {store.per_participant}+ items each, default limits "
            f"({store.config.answers_per_minute} answers per participant per minute):\n\n"
            "| participants | answers accepted | stored | distinct (participant, item) | planned | lost | duplicated "
            "| wall s | request p50 s | p95 s | max s | 429 retries |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
            f"| {participants} | {accepted} | {stored} | {distinct} | {planned} | {accepted - stored} | "
            f"{stored - distinct} | {result.get('seconds')} | {result.get('latency_p50_s')} | "
            f"{result.get('latency_p95_s')} | {result.get('latency_max_s')} | {result.get('retries_after_429')} |")
    return text, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", type=Path, nargs="+", default=[ROOT / "runs" / "study-bench" / "eval"])
    parser.add_argument("--participants", type=int, default=20, help="for the load check")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    match_md = "\n\n".join(match(e, e.parent / f"study-match-{e.name}")[0] for e in args.eval)
    load_md, _ = load(args.eval[0], args.eval[0].parent / "study-load", args.participants)
    update_section("bench_study", "## The human-study page with simulated participants (`scripts/bench_study.py`)\n\n"
                   f"{machine()}. Judge: SmolLM2-135M-Instruct on CPU, as each eval ran it.\n\n"
                   "### Simulated participants reproduce `pcdrl eval`\n\n" + match_md + "\n\n"
                   "### Load on loopback\n\n" + load_md + "\n")
    print(match_md + "\n\n" + load_md)


if __name__ == "__main__":
    main()
