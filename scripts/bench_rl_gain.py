"""Does RL make explanations more useful? The RL gain on held-out questions, on two CPU cores, in one command.

GRPO on concept sets, one seed per core side by side, then `pcdrl eval` of every seed on every held-out item with
the shuffled-labels control, and optionally the held-out Gemma judge. Every stage is an ordinary run folder under
--out; a finished stage is reused and an interrupted training run resumes, so rerunning the command is cheap.

    python scripts/bench_rl_gain.py                                  # input labels, random distractors, ~45 min
    python scripts/bench_rl_gain.py --distractors same_source        # the harder test of meaning
    python scripts/bench_rl_gain.py --reward judge_logprob --seeds 0 # another reward term on the same budget

The inputs (a labelled PCD and continuation questions, `scripts/gpu_rl_signal_inputs.sh`) are built under --inputs
when missing, from the PCD at --pcd (`pcdrl quickstart` leaves one at runs/quickstart/pcd-pretrain/pcd), which takes
~15 min on 2 cores once. The result goes into docs/benchmarks.md, one section per (labels, distractors, reward).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from benchmarks_doc import update_section  # noqa: E402
from pcdrl.models.loading import cpu_has_bf16  # noqa: E402

GEMMA = "{name: gemma, backend: {model: gemma3-270m, batch_size: 8}}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default="runs/signal-inputs", help="labelled PCDs and question sets (built if missing)")
    parser.add_argument("--pcd", default="runs/quickstart/pcd-pretrain/pcd",
                        help="pretrained PCD to build --inputs from when they are missing")
    parser.add_argument("--out", default="runs/rl-gain", help="run folders go to OUT/<labels>-<distractors>-<reward>/")
    parser.add_argument("--label-kind", default="input", choices=["input", "output", "both"])
    parser.add_argument("--distractors", default="random", choices=["random", "same_source"])
    parser.add_argument("--reward", default="judge_true_pmi", help="one reward term, weight 1 (pcdrl/rewards/registry.py)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated; each seed trains on its own core")
    parser.add_argument("--steps", type=int, default=36)
    parser.add_argument("--items-per-step", type=int, default=32)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--judge-dtype", default="bfloat16" if cpu_has_bf16() else "float32",
                        choices=["float32", "bfloat16"],
                        help="training judge dtype; bfloat16 by default on CPUs with AVX-512 BF16 or AMX")
    parser.add_argument("--train-override", action="append", default=[], help="extra `pcdrl train` override")
    parser.add_argument("--gemma-items", type=int, default=0,
                        help="also score pretrained vs RL with the held-out Gemma judge on this many items (0: skip)")
    parser.add_argument("--rows", default="prior,random,pretrained,rl", help="`pcdrl eval` rows")
    parser.add_argument("--controls", default="shuffled_labels", help="`pcdrl eval` label controls ('' for none)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the eval stages")
    parser.add_argument("--train-only", action="store_true",
                        help="stop after training (to train several variants side by side, then eval one by one)")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    return parser.parse_args(argv)


def pcdrl(args: list[str], threads: int, log: Path | None = None) -> subprocess.Popen:
    """Start one `pcdrl` verb in a child process (its own torch thread count; output to `log` if given)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PCDRL_NO_PROGRESS": "1"}
    out = open(log, "a") if log else None
    return subprocess.Popen([sys.executable, "-m", "pcdrl.cli", *args], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT if out else None)


def wait_all(processes: list[subprocess.Popen], what: str, logs: list[Path]) -> None:
    codes = [p.wait() for p in processes]
    failed = [str(log) for code, log in zip(codes, logs) if code != 0]
    if failed:
        sys.exit(f"bench_rl_gain: {what} failed; see {', '.join(failed)}")


def ensure_inputs(args: argparse.Namespace) -> tuple[Path, Path]:
    inputs = ROOT / args.inputs
    pcd, data = inputs / f"pcd-{args.label_kind}", inputs / f"data-{args.distractors}"
    if (pcd / "concepts.json").exists() and (data / "summary.json").exists():
        return pcd, data
    source = ROOT / args.pcd
    if not (source / "encoder.safetensors").exists():
        sys.exit(f"bench_rl_gain: {pcd} or {data} is missing, and --pcd {args.pcd} is not a pretrained PCD folder "
                 "(no encoder.safetensors). Run `pcdrl quickstart` (it leaves one at "
                 "runs/quickstart/pcd-pretrain/pcd) or `pcdrl pretrain`, or pass --pcd.")
    print(f"building inputs under {inputs} from {source} (~15 min on 2 cores, once)", flush=True)
    env = {**os.environ, "PCD": str(source), "ART": str(inputs), "PY": sys.executable}
    subprocess.run(["bash", str(ROOT / "scripts" / "gpu_rl_signal_inputs.sh")], cwd=ROOT, env=env, check=True)
    return pcd, data


def train_seeds(args: argparse.Namespace, pcd: Path, data: Path, folder: Path, seeds: list[int]) -> list[Path]:
    runs = [folder / f"seed{seed}" for seed in seeds]
    todo = [(seed, run) for seed, run in zip(seeds, runs) if not (run / "summary.json").exists()]
    common = [f"pcd={pcd}", f"data={data}", "heldout_judges=[]", "evaluate_pretrained=false", "max_eval_items=16",
              f"steps={args.steps}", f"items_per_step={args.items_per_step}", f"grpo.group_size={args.group_size}",
              "threads=1", "checkpoint_every=6", f"rewards={{{args.reward}: 1.0}}",
              f"judge.backend.dtype={args.judge_dtype}", *args.train_override]
    logs = [folder / f"train-seed{seed}.log" for seed, _ in todo]
    processes = [pcdrl(["train", "configs/rl/grpo_concepts.yaml", "--out", str(run), f"seed={seed}", *common,
                        "--resume"], threads=1, log=log) for (seed, run), log in zip(todo, logs)]
    if processes:
        print(f"training seeds {[s for s, _ in todo]} side by side, one core each (logs: {folder}/train-seed*.log)",
              flush=True)
    wait_all(processes, "training", logs)
    return runs


def evaluate(runs: list[Path], out: Path, overrides: list[str], threads: int) -> str:
    if not (out / "table.md").exists():
        log = out.parent / f"{out.name}.log"
        wait_all([pcdrl(["eval", *map(str, runs), "--out", str(out), *overrides, f"threads={threads}"], threads, log)],
                 f"eval into {out}", [log])
    return (out / "table.md").read_text()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    tag = f"{args.label_kind}-{args.distractors}-{args.reward}"
    folder = ROOT / args.out / tag
    folder.mkdir(parents=True, exist_ok=True)
    pcd, data = ensure_inputs(args)

    runs = train_seeds(args, pcd, data, folder, seeds)
    if args.train_only:
        return
    train_seconds = [json.loads((run / "summary.json").read_text()).get("train_seconds") for run in runs]
    table = evaluate(runs, folder / "eval", [f"controls=[{args.controls}]", f"rows=[{args.rows}]", "items_per_call=64"],
                     args.threads)
    print(table, flush=True)
    gemma = ""
    if args.gemma_items:
        gemma = evaluate(runs, folder / "eval-gemma", [f"judges=[{GEMMA}]", "rows=[pretrained, rl]", "controls=[]",
                                                       f"max_items={args.gemma_items}"], args.threads)
        print(gemma, flush=True)

    command = "python scripts/bench_rl_gain.py " + " ".join(argv if argv is not None else sys.argv[1:])
    explanations = args.steps * args.items_per_step * args.group_size
    seconds = ", ".join(f"{s:.0f} s" if isinstance(s, (int, float)) else "?" for s in train_seconds)
    eval_seconds = json.loads((folder / "eval" / "summary.json").read_text())["wall_seconds"]
    total = max((s for s in train_seconds if isinstance(s, (int, float))), default=0) + eval_seconds
    text = "\n".join([
        f"## RL gain: {args.label_kind} labels, {args.distractors} distractors, {args.reward} (scripts/bench_rl_gain.py)",
        "",
        f"`{command.strip()}` (2-core x86_64 CPU; inputs from scripts/gpu_rl_signal_inputs.sh). Training and "
        f"eval took {total / 60:.0f} min in all.",
        "",
        f"GRPO, `rewards: {{{args.reward}: 1.0}}`, judge SmolLM2 in {args.judge_dtype}, {args.steps} steps × "
        f"{args.items_per_step} items × {args.group_size} samples = {explanations:,} judged explanations per seed; "
        f"seeds {seeds}, one core each: {seconds} of training. Eval: the training judge on every held-out item, "
        f"{eval_seconds:.0f} s on {args.threads} threads.",
        "",
        table.strip(),
        *(["", f"Held-out judge of another family, first {args.gemma_items} items:", "", gemma.strip()] if gemma else []),
    ])
    if not args.no_doc:
        update_section(f"bench_rl_gain_{tag}", text)


if __name__ == "__main__":
    main()
