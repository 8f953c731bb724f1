"""Does RL make explanations more useful? Held-out judge accuracy, pretrained vs RL, over seeds and variants.

Each (variant, seed) is an ordinary `pcdrl train` run folder under --out; finished runs are
reused, so an interrupted benchmark resumes. The pretrained policy is scored once (it does not
depend on the seed). The 95% CI of the mean gain is a t-interval over seeds.

    OMP_NUM_THREADS=2 python scripts/bench_rl_gain.py --config configs/rl/grpo_concepts.yaml \\
        --variant "grpo beta=0:kl.beta=0" --variant "grpo beta=0.05:kl.beta=0.05,heldout_judges=[]"
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks_doc import machine, update_section  # noqa: E402
from configs.loader import load_config  # noqa: E402
from rl.train_config import RLTrainConfig  # noqa: E402
from rl.trainer import train  # noqa: E402

# Two-sided 95% t quantiles by degrees of freedom (seeds − 1).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan for a single value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition(":")
    return name.strip(), [o for o in _split(overrides) if o]


def _split(text: str) -> list[str]:
    """Split overrides on commas that are not inside brackets or braces."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return parts + [current.strip()]


def run_one(config: str, overrides: list[str], out: Path) -> dict:
    summary_path = out / "summary.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    cfg = load_config(RLTrainConfig, config, overrides)
    resume = (out / "checkpoints" / "latest.txt").exists()
    return train(cfg, out, resume=resume)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/rl/grpo_concepts.yaml")
    parser.add_argument("--variant", action="append", required=True, help="'name:override,override' (repeatable)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="runs/rl-gain")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    seeds = [int(s) for s in args.seeds.split(",")]
    pretrained: dict[str, float] = {}
    results: dict[str, list[dict]] = {}
    for index, text in enumerate(args.variant):
        name, overrides = parse_variant(text)
        for seed in seeds:
            first = index == 0 and seed == seeds[0]
            out = Path(args.out) / name.replace(" ", "_").replace("=", "") / f"seed{seed}"
            summary = run_one(args.config, [f"seed={seed}", f"threads={threads}",
                                            f"evaluate_pretrained={str(first).lower()}", *overrides], out)
            pretrained.update(summary.get("heldout_accuracy_pretrained", {}))
            results.setdefault(name, []).append(summary)
            print(f"{name} seed {seed}: {json.dumps(summary)}", flush=True)
    judges = list(pretrained)
    header = "| variant | seeds | train s (mean) | " + " | ".join(
        f"{j}: RL accuracy per seed | {j}: gain, mean ± 95% CI" for j in judges) + " |"
    lines = [
        f"`OMP_NUM_THREADS={threads} python scripts/bench_rl_gain.py --config {args.config} "
        + " ".join(f"--variant '{v}'" for v in args.variant) + f" --seeds {args.seeds}` ({machine()})",
        "",
        f"Held-out items: {results[next(iter(results))][0]['n_eval_items']}. Pretrained greedy top-k accuracy: "
        + ", ".join(f"{j} {a:.3f}" for j, a in pretrained.items()) + ".",
        "",
        header,
        "|---|---|---|" + "---|---|" * len(judges),
    ]
    for name, summaries in results.items():
        cells = [name, str(len(summaries)), f"{statistics.fmean(s['train_seconds'] for s in summaries):.0f}"]
        for j in judges:
            accs = [s["heldout_accuracy_rl"].get(j) for s in summaries]
            if any(a is None for a in accs):
                cells += ["not scored", ""]
                continue
            mean, half = mean_ci([a - pretrained[j] for a in accs])
            cells += [", ".join(f"{a:.3f}" for a in accs), f"{mean:+.3f} ± {half:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if not args.no_doc:
        update_section("bench_rl_gain", "## RL gain on held-out questions (scripts/bench_rl_gain.py)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
