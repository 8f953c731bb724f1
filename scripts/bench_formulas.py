"""Formulas against concept sets on two CPU cores: matched size, PPO against GRPO, truth by mask or by reward, and
the sparsity sweep's Pareto plot (issue 14), in one command.

Every variant is an ordinary `pcdrl train` run on the CPU RL-gain inputs (input labels, random distractors,
`judge_true_pmi`), on the same budget as scripts/bench_rl_gain.py: 36 steps x 32 items x 8 samples = 9,216 judged
explanations, seed 0, one core each, two side by side. Then `pcdrl eval` scores each on every held-out item:

    grpo-mask          GRPO on formulas, truth by mask, sparsity 0.05   (configs/rl/grpo_formulas.yaml as shipped)
    concepts-k4        GRPO on concept sets of k=4 labels: the size the formulas start at (grpo_concepts.yaml)
    sparsity-0.2       as grpo-mask with sparsity 0.2
    t2-sparsity-W      as grpo-mask at sampling temperature 2, sparsity W in 0.05, 0.2, 0.5 (the Pareto sweep)
    t2-reward          as t2-sparsity-0.05, truth by the `truth` reward term instead of the mask
    t2-ppo             as t2-sparsity-0.05, token-level PPO with GAE, 8 samples per item (ppo_formulas.yaml)

A finished stage is reused and an interrupted run resumes, so rerunning the command is cheap. The tables go into
docs/benchmarks.md (section bench_formulas), the Pareto plot into docs/img/formula_pareto.png.

    python scripts/bench_formulas.py                 # everything (~2 h on 2 cores)
    python scripts/bench_formulas.py --only grpo-mask,concepts-k4
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from bench_rl_gain import GEMMA, pcdrl, wait_all  # noqa: E402
from benchmarks_doc import update_section  # noqa: E402


@dataclass(frozen=True)
class Variant:
    config: str
    overrides: tuple[str, ...]
    what: str


FORMULAS = "configs/rl/grpo_formulas.yaml"
T2 = "formula.temperature=2.0"  # sampling temperature 2: more distinct formulas per group than the shipped 1.0


def _rewards(sparsity: float, truth: float = 0.0) -> str:
    terms = "judge_true_pmi: 1.0" + (f", sparsity: {sparsity}" if sparsity else "") + (f", truth: {truth}" if truth else "")
    return f"rewards={{{terms}}}"


VARIANTS = {
    "grpo-mask": Variant(FORMULAS, (_rewards(0.05),), "GRPO, truth mask, sparsity 0.05, temperature 1 (shipped)"),
    "concepts-k4": Variant("configs/rl/grpo_concepts.yaml", ("policy.k=4", _rewards(0)),
                           "GRPO on concept sets, k = 4"),
    "sparsity-0.2": Variant(FORMULAS, (_rewards(0.2),), "GRPO, truth mask, sparsity 0.2, temperature 1"),
    "t2-sparsity-0.05": Variant(FORMULAS, (T2, _rewards(0.05)), "GRPO, truth mask, sparsity 0.05, temperature 2"),
    "t2-sparsity-0.2": Variant(FORMULAS, (T2, _rewards(0.2)), "GRPO, truth mask, sparsity 0.2, temperature 2"),
    "t2-sparsity-0.5": Variant(FORMULAS, (T2, _rewards(0.5)), "GRPO, truth mask, sparsity 0.5, temperature 2"),
    "t2-reward": Variant(FORMULAS, (T2, "formula.truth=reward", _rewards(0.05, truth=1.0)),
                         "GRPO, truth by reward (`truth: 1.0`, no mask), sparsity 0.05, temperature 2"),
    "t2-ppo": Variant("configs/rl/ppo_formulas.yaml", (T2, "ppo.samples_per_item=8", _rewards(0.05)),
                      "token-level PPO with GAE, truth mask, sparsity 0.05, temperature 2"),
}
# The Pareto sweep over the sparsity weight (temperature 2), and the two temperature-1 points.
SWEEP = {"t2-sparsity-0.05": 0.05, "t2-sparsity-0.2": 0.2, "t2-sparsity-0.5": 0.5}
SWEEP_T1 = {"grpo-mask": 0.05, "sparsity-0.2": 0.2}
COMMON = ("pcd=runs/signal-inputs/pcd-input", "data=runs/signal-inputs/data-random", "heldout_judges=[]",
          "evaluate_pretrained=false", "max_eval_items=16", "steps=36", "items_per_step=32", "grpo.group_size=8",
          "threads=1", "checkpoint_every=6", "judge.backend.dtype=bfloat16", "seed=0")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/formulas", help="run folders go to OUT/<variant>/seed0")
    parser.add_argument("--only", default=",".join(VARIANTS), help=f"comma-separated, from {list(VARIANTS)}")
    parser.add_argument("--gemma-items", type=int, default=200, help="held-out Gemma judge on this many items")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the eval stages")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    return parser.parse_args(argv)


def train(out: Path, names: list[str]) -> None:
    """Train the variants not finished yet, two at a time, one core each."""
    todo = [n for n in names if not (out / n / "seed0" / "summary.json").exists()]

    def one(name: str) -> None:
        v, log = VARIANTS[name], out / name / "train-seed0.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        wait_all([pcdrl(["train", v.config, "--out", str(out / name / "seed0"), *COMMON, *v.overrides, "--resume"],
                        threads=1, log=log)], f"training {name}", [log])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, todo))


def evaluate(runs: list[Path], out: Path, overrides: list[str], threads: int) -> dict:
    if not (out / "summary.json").exists():
        log = out.parent / f"{out.name}.log"
        wait_all([pcdrl(["eval", *map(str, runs), "--out", str(out), *overrides, f"threads={threads}",
                         "items_per_call=64"], threads, log)], f"eval into {out}", [log])
    return json.loads((out / "summary.json").read_text())


def row(summary: dict, judge: str, name: str) -> tuple[float, list[float]]:
    return summary["accuracy"][judge][name], summary["ci95"][judge][name]


def fmt(value: float, ci: list[float], sign: str = "") -> str:
    return f"{value:{sign}.3f} [{ci[0]:{sign}.3f}, {ci[1]:{sign}.3f}]"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out, names = ROOT / args.out, [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"bench_formulas: unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    train(out, names)
    seed = {n: out / n / "seed0" for n in names}
    sections = []
    if {"grpo-mask", "concepts-k4"} <= set(names):
        matched = [f"matched_concepts=[{seed['concepts-k4']}]"]
        main_eval = evaluate([seed["grpo-mask"]], out / "eval-main",
                             [*matched, "rows=[prior, random, pretrained, rl]", "controls=[shuffled_labels]"],
                             args.threads)
        gemma = evaluate([seed["grpo-mask"]], out / "eval-gemma",
                         [*matched, f"judges=[{GEMMA}]", "rows=[pretrained, rl]", "controls=[]",
                          f"max_items={args.gemma_items}"], args.threads)
        concepts = evaluate([seed["concepts-k4"]], out / "eval-concepts-k4", ["rows=[pretrained, rl]", "controls=[]"],
                            args.threads)
        sections.append(matched_section(out, main_eval, gemma, concepts))
    formula_runs = [n for n in names if VARIANTS[n].config != "configs/rl/grpo_concepts.yaml"]
    with ThreadPoolExecutor(max(1, 2 // args.threads)) as pool:  # one eval per core when each has one thread
        found = pool.map(lambda n: evaluate([seed[n]], out / f"eval-{n}", ["rows=[pretrained, rl]", "controls=[]"],
                                            args.threads), formula_runs)
        per_variant = dict(zip(formula_runs, found))
    sections.append(variants_section(out, per_variant))
    if sum(n in per_variant for n in SWEEP) >= 2:
        concepts = out / "eval-concepts-k4" / "summary.json"
        sections.append(pareto_section(per_variant, json.loads(concepts.read_text()) if concepts.exists() else None))
    command = "python scripts/bench_formulas.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "## Formulas against concept sets (scripts/bench_formulas.py)",
        "",
        f"`{command.strip()}` (2-core x86_64 CPU). Inputs: the CPU RL-gain inputs (input labels, random "
        "distractors). Every run: `judge_true_pmi`, judge SmolLM2 in bfloat16, 36 steps × 32 items × 8 samples = "
        "9,216 judged explanations, seed 0, one core; formulas: at most 4 literals, depth 3, AND/OR/NOT, warm-started "
        "to the greedy 4-concept conjunction. Eval: `pcdrl eval` on every held-out item that has a true conjunction. "
        "One seed per variant: the intervals are over items only.",
        "",
        "\n\n".join(sections),
    ])
    print(text)
    if not args.no_doc:
        update_section("bench_formulas", text)


def matched_section(out: Path, main_eval: dict, gemma: dict, concepts: dict) -> str:
    f = main_eval["formulas"]
    pre, pre_ci = row(concepts, "smollm2", "pretrained")
    gain = concepts["gain"]["smollm2"]
    lines = ["### Formulas against concept sets at the same size", "",
             f"`{_rel(out / 'eval-main')}/table.md` (SmolLM2, {main_eval['n_items']} items) and "
             f"`{_rel(out / 'eval-gemma')}/table.md` (Gemma, first {gemma['n_items']} items):", "",
             (out / "eval-main" / "table.md").read_text().strip(), "", (out / "eval-gemma" / "table.md").read_text().strip(),
             "", f"Mean literals per held-out formula: {json.dumps(f['mean_size'])}; share true: "
             f"{json.dumps(f['true_share'])}.", "",
             f"The concept-set run on its own (`{_rel(out / 'eval-concepts-k4')}`, SmolLM2, {concepts['n_items']} items): "
             f"pretrained top-4 {fmt(pre, pre_ci)}, RL − pretrained {fmt(gain['rl_minus_pretrained'], gain['ci95'], '+')}."]
    return "\n".join(lines)


def variants_section(out: Path, evals: dict) -> str:
    lines = ["### Formula variants (PPO against GRPO, truth by mask or reward, sparsity)", "",
             "| variant | what | rl accuracy (SmolLM2) | rl − pretrained conjunction | mean literals | share true | "
             "uses OR | uses NOT | distinct formulas per 8 samples | training s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in evals.items():
        acc, ci = row(s, "smollm2", "rl")
        gain = s["gain"]["smollm2"]
        last = _last_metrics(out / name / "seed0")
        lines.append(f"| {name} | {VARIANTS[name].what} | {fmt(acc, ci)} | "
                     f"{fmt(gain['rl_minus_pretrained'], gain['ci95'], '+')} | {s['formulas']['mean_size']['rl']:.2f} | "
                     f"{s['formulas']['true_share']['rl']:.1%} | {last.get('formula/uses_or', float('nan')):.2f} | "
                     f"{last.get('formula/uses_not', float('nan')):.2f} | {_distinct(out / name / 'seed0'):.2f} | "
                     f"{json.loads((out / name / 'seed0' / 'summary.json').read_text())['train_seconds']:.0f} |")
    lines += ["", "Mean literals and share true are over the greedy held-out formulas; 'uses OR/NOT' is the share of "
              "formulas sampled in the last training step that use the operator."]
    return "\n".join(lines)


def pareto_section(evals: dict, concepts: dict | None = None) -> str:
    points = []  # (temperature, sparsity weight, mean literals, accuracy, ci)
    for table, temperature in ((SWEEP, 2.0), (SWEEP_T1, 1.0)):
        for name, weight in table.items():
            if name in evals:
                acc, ci = row(evals[name], "smollm2", "rl")
                points.append((temperature, weight, evals[name]["formulas"]["mean_size"]["rl"], acc, ci))
    reference = next(iter(evals.values()))
    pre_acc, pre_ci = row(reference, "smollm2", "pretrained")
    pre_size = reference["formulas"]["mean_size"]["pretrained"]
    plot = ROOT / "docs" / "img" / "formula_pareto.png"
    concept_point = (4.0, *row(concepts, "smollm2", "rl")) if concepts else None
    _plot(points, (pre_size, pre_acc, pre_ci), plot, concept_point)
    lines = ["### Sparsity sweep: held-out accuracy against formula size", "",
             f"![accuracy against literals]({plot.relative_to(ROOT / 'docs')})", "",
             "| temperature | sparsity weight | mean literals | rl accuracy (SmolLM2) |", "|---|---|---|---|",
             *[f"| {t} | {w} | {size:.2f} | {fmt(acc, ci)} |" for t, w, size, acc, ci in sorted(points)],
             f"| pretrained conjunction | | {pre_size:.2f} | {fmt(pre_acc, pre_ci)} |",
             *([f"| RL concept set, k=4 (not a formula) | | 4.00 | {fmt(*concept_point[1:])} |"] if concept_point else [])]
    return "\n".join(lines)


def _plot(points, pretrained, path: Path, concept_point=None) -> None:
    from pcdrl.evaluation.plots import new_figure, save_png

    fig = new_figure((5.5, 3.8))
    ax = fig.add_subplot(111)
    for t, w, size, acc, ci in sorted(points):
        color = "tab:blue" if t == 2.0 else "tab:orange"
        ax.errorbar([size], [acc], yerr=[[acc - ci[0]], [ci[1] - acc]], fmt="o", color=color, capsize=3)
        ax.annotate(f"T={t:g}, sparsity {w}", (size, acc), textcoords="offset points", xytext=(5, 5), fontsize=8)
    size, acc, ci = pretrained
    ax.errorbar([size], [acc], yerr=[[acc - ci[0]], [ci[1] - acc]], fmt="s", color="tab:gray", capsize=3)
    ax.annotate("pretrained conjunction", (size, acc), textcoords="offset points", xytext=(5, -12), fontsize=8)
    if concept_point:  # the concept-set run of the same size, for scale: what formulas are compared with
        size, acc, ci = concept_point
        ax.errorbar([size], [acc], yerr=[[acc - ci[0]], [ci[1] - acc]], fmt="D", color="tab:green", capsize=3)
        ax.annotate("RL concept set, k=4", (size, acc), textcoords="offset points", xytext=(-95, 0), fontsize=8)
    ax.set_xlabel("mean literals per held-out formula")
    ax.set_ylabel("held-out accuracy (SmolLM2 judge)")
    ax.set_title("Formulas: usefulness against size (GRPO, 9,216 judged explanations each)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, path)


def _distinct(run: Path) -> float:
    """Distinct formulas per item among its 8 samples, averaged over training steps: how much GRPO had to compare."""
    values = [json.loads(line).get("formula/distinct_per_item") for line in (run / "metrics.jsonl").open()]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


def _rel(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _last_metrics(run: Path) -> dict:
    lines = (run / "metrics.jsonl").read_text().strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


if __name__ == "__main__":
    main()
