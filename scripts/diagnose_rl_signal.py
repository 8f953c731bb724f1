"""Is there a signal for RL to learn? Sample concept sets from the pretrained policy and ask the judge.

For each item: the greedy top-k's judge accuracy, and G sampled sets' accuracies. It reports the
headroom (best-of-G against greedy), how often the sets of one item disagree at all (GRPO learns
nothing from a group whose answers agree), and whether a concept's effect on accuracy carries over
between two random halves of the items: only a shared effect can be learnt as a per-concept preference.

    OMP_NUM_THREADS=2 python scripts/diagnose_rl_signal.py --config configs/rl/grpo_concepts.yaml --out runs/rl-signal
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks_doc import machine, update_section  # noqa: E402
from pcdrl.runtime.config_loader import load_config  # noqa: E402
from pcdrl.rl.train_config import RLTrainConfig  # noqa: E402


def collect(cfg: RLTrainConfig, samples_per_item: int) -> dict:
    from pcdrl.rl.trainer import prepare, set_accuracies
    from pcdrl.simulators.judge import Judge

    prep = prepare(cfg)
    items = prep.train_items + prep.eval_items
    pooled = torch.cat([prep.pooled_train, prep.pooled_eval])
    judge = Judge(cfg.judge)
    torch.manual_seed(0)
    greedy = prep.policy.greedy(pooled)
    sampled = prep.policy.sample(pooled.repeat_interleave(samples_per_item, dim=0))

    rows = [it for it in items for _ in range(samples_per_item)]
    sampled_acc = []
    for start in range(0, len(rows), 64):
        sampled_acc += set_accuracies(judge, rows[start:start + 64], sampled[start:start + 64], prep.labels)
    return {"greedy": set_accuracies(judge, items, greedy, prep.labels), "samples": sampled_acc, "chosen": sampled.tolist(), "G": samples_per_item}


def split_half_correlation(per_item: list[list[float]], chosen: list[list[int]], G: int, seed: int,
                           min_uses: int = 5) -> tuple[float, int]:
    """Correlation, across concepts, of each concept's mean advantage in one half of the items with the other half."""
    def effects(indices):
        found = defaultdict(list)
        for i in indices:
            mean = statistics.fmean(per_item[i])
            for j in range(G):
                for c in chosen[i * G + j]:
                    found[c].append(per_item[i][j] - mean)
        return found

    order = list(range(len(per_item)))
    random.Random(seed).shuffle(order)
    a, b = effects(order[: len(order) // 2]), effects(order[len(order) // 2:])
    common = [c for c in a if c in b and len(a[c]) >= min_uses and len(b[c]) >= min_uses]
    x, y = [statistics.fmean(a[c]) for c in common], [statistics.fmean(b[c]) for c in common]
    return statistics.correlation(x, y), len(common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/rl/grpo_concepts.yaml")
    parser.add_argument("--out", default="runs/rl-signal", help="samples.json is written (and reused) here")
    parser.add_argument("--samples-per-item", type=int, default=8)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("overrides", nargs="*", default=["max_train_items=120", "max_eval_items=60"])
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = load_config(RLTrainConfig, args.config, ["heldout_judges=[]", *args.overrides])
    path = Path(args.out) / "samples.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(collect(cfg, args.samples_per_item)))
    data = json.loads(path.read_text())
    G, greedy, samples = data["G"], data["greedy"], data["samples"]
    per_item = [samples[i * G:(i + 1) * G] for i in range(len(greedy))]
    correlations = [split_half_correlation(per_item, data["chosen"], G, seed) for seed in range(20)]
    r = [c for c, _ in correlations]
    lines = [
        f"`OMP_NUM_THREADS=2 python scripts/diagnose_rl_signal.py --config {args.config} --out {args.out} "
        + " ".join(args.overrides) + f"` ({machine()})",
        "",
        f"{len(greedy)} continuation items; {G} sets sampled per item from the pretrained policy at temperature "
        f"{cfg.policy.temperature}; judge {cfg.judge.backend.model}.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| accuracy, greedy top-{cfg.policy.k} | {statistics.fmean(greedy):.3f} |",
        f"| accuracy, a sampled set (mean) | {statistics.fmean(samples):.3f} |",
        f"| accuracy, best of {G} sets (an oracle that knows the answer) | {statistics.fmean(max(x) for x in per_item):.3f} |",
        f"| accuracy, worst of {G} sets | {statistics.fmean(min(x) for x in per_item):.3f} |",
        f"| items whose {G} sets do not all get the same accuracy | {statistics.fmean(len(set(x)) > 1 for x in per_item):.1%} |",
        f"| split-half correlation of per-concept effects (20 random halvings; {correlations[0][1]} concepts) "
        f"| mean {statistics.fmean(r):+.3f}, range {min(r):+.3f} to {max(r):+.3f} |",
    ]
    print("\n".join(lines))
    if not args.no_doc:
        update_section("diagnose_rl_signal", "## Is there an RL signal? (scripts/diagnose_rl_signal.py)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
