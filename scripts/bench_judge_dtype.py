"""Judge speed and answers by dtype on real held-out items: float32 against bfloat16, every option or the true one.

The judge reads the pretrained PCD's greedy top-8 labels for real continuation questions, as in `pcdrl
judge-eval`. Agreement is measured against float32 with every option scored: the share of items where both
pick the same option, and the mean |PMI gap| per option. Writes a section of docs/benchmarks.md.

    OMP_NUM_THREADS=1 python scripts/bench_judge_dtype.py --data runs/signal-inputs/data-same_source \\
        --pcd runs/signal-inputs/pcd-both --items 64
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks_doc import machine, update_section  # noqa: E402
from pcdrl.behaviors.build import load_items  # noqa: E402
from pcdrl.behaviors.encoded import encode_items, load_labelled_pcd, pretrained_concepts  # noqa: E402
from pcdrl.models.backends.base import BackendConfig  # noqa: E402
from pcdrl.evaluation.judge_eval import select_items  # noqa: E402
from pcdrl.simulators.config import JudgeConfig  # noqa: E402
from pcdrl.simulators.judge import Judge  # noqa: E402
from pcdrl.simulators.metrics import expected_accuracy  # noqa: E402
from pcdrl.simulators.render import Explanation  # noqa: E402


def pick(scores: list[float]) -> int:
    return max(range(len(scores)), key=scores.__getitem__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="runs/signal-inputs/data-same_source")
    parser.add_argument("--pcd", default="runs/signal-inputs/pcd-both")
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    items = select_items(load_items(args.data, split="test"), args.items, seed=7)
    labelled = load_labelled_pcd(args.pcd)
    shown = pretrained_concepts(labelled, encode_items(labelled, items, args.data), 8)
    questions, options = [it["question"] for it in items], [it["options"] for it in items]
    truth = [it["answer"] for it in items]
    explanations = [Explanation(labels=tuple(labelled.labels[c] for c in top)) for top in shown]
    load_before = os.getloadavg()
    results, rows = {}, []
    for dtype in ("float32", "bfloat16"):
        judge = Judge(JudgeConfig(name=dtype, backend=BackendConfig(model=args.model, batch_size=args.batch_size,
                                                                    dtype=dtype)))
        judge.answer(questions, options, [None] * len(items))  # calibration is cached for a judge's lifetime
        for true_only in (False, True):
            start = time.perf_counter()
            answers = judge.answer(questions, options, explanations, only=truth if true_only else None)
            rate = len(items) / (time.perf_counter() - start) / threads
            if not true_only:
                results[dtype] = answers
            rows.append((dtype, "true option only" if true_only else "every option", rate))
            print(rows[-1], flush=True)
        judge.close()
    base = rows[0][2]
    full, half = results["float32"], results["bfloat16"]
    agreement = sum(pick(a) == pick(b) for a, b in zip(full.scores, half.scores)) / len(items)
    gap = sum(abs(x - y) for a, b in zip(full.scores, half.scores) for x, y in zip(a, b)) / sum(map(len, options))
    accuracy = {name: sum(expected_accuracy(s, t) for s, t in zip(a.scores, truth)) / len(items)
                for name, a in results.items()}
    lines = [
        f"`OMP_NUM_THREADS={threads} python scripts/bench_judge_dtype.py --data {args.data} --pcd {args.pcd} "
        f"--items {args.items}` (judge {args.model}, batch {args.batch_size}; {machine()}; load average "
        f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after)",
        "",
        f"{len(items)} held-out continuation items, the pretrained PCD's greedy top-8 labels.",
        "",
        "| dtype | scoring | explanations/s per core | speed-up |",
        "|---|---|---|---|",
        *[f"| {d} | {s} | {r:.2f} | {r / base:.2f}× |" for d, s, r in rows],
        "",
        f"bfloat16 against float32 (every option, PMI): same pick on {agreement:.3f} of items, mean |PMI gap| "
        f"{gap:.3f} nats per option; accuracy float32 {accuracy['float32']:.3f}, bfloat16 {accuracy['bfloat16']:.3f}.",
    ]
    print("\n".join(lines))
    if not args.no_doc:
        update_section("bench_judge_dtype", "## Judge dtype on CPU (scripts/bench_judge_dtype.py)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
