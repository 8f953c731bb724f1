"""Pretraining throughput with and without the activation cache, on one thread.

    OMP_NUM_THREADS=1 python scripts/bench_pretrain.py [--steps 8] [--config configs/pcd/quickstart.yaml]

Without the cache every step also runs S up to the read layer; with it, S ran once per window
beforehand and a step is the encoder plus the decoder's forward and backward.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from benchmarks_doc import machine, update_section  # noqa: E402
from pcdrl.runtime.config_loader import load_config  # noqa: E402
from pcdrl.pcd.config import PretrainRunConfig  # noqa: E402
from pcdrl.pcd.corpus import build_windows  # noqa: E402
from pcdrl.pcd.model import PCD  # noqa: E402


def time_steps(pcd: PCD, windows, steps: int, batch: int, cached: torch.Tensor | None) -> float:
    optimizer = torch.optim.AdamW(pcd.trainable_parameters(), lr=1e-4)
    pcd.train()
    start = time.perf_counter()
    for step in range(steps):
        rows = slice(step * batch, (step + 1) * batch)
        ids = windows.train[rows]
        acts = cached[rows] if cached is not None else pcd.read_activations(ids[:, windows.s_input], windows.middle)
        loss, _ = pcd.suffix_loss(acts, ids[:, windows.suffix])
        loss.mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/pcd/quickstart.yaml")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    cfg = load_config(PretrainRunConfig, args.config)
    batch = cfg.train.batch_size
    pcd = PCD.create(cfg.pcd, seed=0)
    windows = build_windows(cfg.corpus, cfg.window, pcd.tokenizer, seed=0)
    n = (args.steps + 1) * batch
    t0 = time.perf_counter()
    cached = pcd.read_activations(windows.train[:n, windows.s_input], windows.middle)
    fill_seconds = time.perf_counter() - t0
    pcd.encoder.fit_input_stats(cached, pcd.embedding_norm())
    time_steps(pcd, windows, 1, batch, cached)  # warm-up: first-call allocations
    with_cache = time_steps(pcd, windows, args.steps, batch, cached)
    without_cache = time_steps(pcd, windows, args.steps, batch, None)
    tokens = args.steps * batch * cfg.window.total
    rows = [
        ("activation cache (S ran beforehand)", with_cache),
        ("no cache (S runs every step)", without_cache),
    ]
    lines = [
        "## Pretraining throughput (`scripts/bench_pretrain.py`)",
        "",
        f"Command: `OMP_NUM_THREADS=1 python scripts/bench_pretrain.py --config {args.config} --steps {args.steps}`  ",
        f"Machine: {machine()}. Model: {cfg.pcd.subject_model}, read layer {cfg.pcd.read_layer}, "
        f"window {cfg.window.prefix_len}/{cfg.window.middle_len}/{cfg.window.suffix_len}, batch {batch}, m={cfg.pcd.n_concepts}, k={cfg.pcd.k}.",
        "",
        "| mode | s/step | windows/s | tokens/s |",
        "|---|---|---|---|",
    ]
    for name, seconds in rows:
        lines.append(f"| {name} | {seconds / args.steps:.2f} | {args.steps * batch / seconds:.2f} | {tokens / seconds:.0f} |")
    lines += [
        "",
        f"Speed-up from the cache: {without_cache / with_cache:.2f}x. Filling the cache cost "
        f"{fill_seconds / n * 1000:.0f} ms per window, paid once per window rather than once per epoch.",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        update_section("bench_pretrain", report)


if __name__ == "__main__":
    main()
