"""Does the judge read NOT and OR? An oracle-style check on held-out behaviour questions, for each judge.

Each held-out question has a true option A and, here, one distractor B (the option after A). The judge is shown
formulas whose literals name the options' words (labels made from the option texts, printed by
`explanations.to_text` under the template's formula header, exactly as formulas reach the judge in training):

    prior          (no explanation)
    A              'A'                   P(A) should rise above the prior
    NOT A          NOT 'A'               P(A) should fall below the prior (and below `A`)
    NOT B          NOT 'B'               P(B) should fall below the prior
    A OR B         'A' OR 'B'            P(A) and P(B) should both rise above the prior; P(A) less than under `A`
    A AND NOT B    'A' AND NOT 'B'       P(A) should rise above the prior, P(B) fall

Each check is a paired difference over items with a bootstrap 95% interval (`pcd.stats.bootstrap_mean`): a judge
"reads" an operator when the interval lies on the right side of zero.

    python scripts/bench_formula_judge.py --items 300
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from benchmarks_doc import update_section  # noqa: E402
from pcdrl.behaviors.build import load_items  # noqa: E402
from pcdrl.explanations import And, Literal, Not, Or, to_text  # noqa: E402
from pcdrl.pcd.stats import bootstrap_mean  # noqa: E402
from pcdrl.runtime.config_loader import from_dict, parse_yaml  # noqa: E402
from pcdrl.simulators.config import JudgeConfig  # noqa: E402
from pcdrl.simulators.judge import Judge  # noqa: E402
from pcdrl.simulators.render import Explanation  # noqa: E402

A, B = Literal(0), Literal(1)
FORMULAS = {"A": A, "NOT A": Not(A), "NOT B": Not(B), "A OR B": Or((A, B)), "A AND NOT B": And((A, Not(B)))}
# (what is compared, which option's probability, the row that should be higher, the row that should be lower)
CHECKS = [
    ("'A' raises P(A)", "A", "A", "prior"),
    ("NOT 'A' lowers P(A)", "A", "prior", "NOT A"),
    ("NOT 'A' gives P(A) less than 'A'", "A", "A", "NOT A"),
    ("NOT 'B' lowers P(B)", "B", "prior", "NOT B"),
    ("'A' OR 'B' raises P(A)", "A", "A OR B", "prior"),
    ("'A' OR 'B' raises P(B)", "B", "A OR B", "prior"),
    ("'A' OR 'B' gives P(A) less than 'A'", "A", "A", "A OR B"),
    ("'A' AND NOT 'B' raises P(A)", "A", "A AND NOT B", "prior"),
    ("'A' AND NOT 'B' lowers P(B)", "B", "prior", "A AND NOT B"),
]
JUDGES = {
    "smollm2": "{name: smollm2, calibration: pmi, backend: {kind: hf, model: smollm2-135m-instruct, dtype: DTYPE, "
               "batch_size: 8}}",
    "gemma": "{name: gemma, calibration: pmi, backend: {kind: hf, model: gemma3-270m, batch_size: 8}}",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="runs/signal-inputs/data-random", help="a `pcdrl data build` folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--items", type=int, default=300, help="first N items of the split (0 = all)")
    parser.add_argument("--judges", default="smollm2,gemma", help=f"comma-separated, from {sorted(JUDGES)}")
    parser.add_argument("--judge-dtype", default="bfloat16", choices=["float32", "bfloat16"],
                        help="the SmolLM2 judge's dtype (bfloat16 is what training uses on CPUs with AVX-512 BF16)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    return parser.parse_args(argv)


def oracle_texts(item: dict) -> tuple[int, int, dict[str, str]]:
    """The true option A, the distractor B, and each row's formula text for this item (labels = option texts)."""
    a = item["answer"]
    b = (a + 1) % len(item["options"])
    labels = {0: item["options"][a].strip() or item["options"][a], 1: item["options"][b].strip() or item["options"][b]}
    return a, b, {name: to_text(f, labels) for name, f in FORMULAS.items()}


def judge_probs(judge: Judge, items: list[dict]) -> dict[str, torch.Tensor]:
    """Per row, [N, 2]: the judge's probability of A and of B on each item."""
    picks = [oracle_texts(it) for it in items]
    out = {}
    for row in ["prior", *FORMULAS]:
        explanations = [None if row == "prior" else Explanation(formula=texts[row]) for _, _, texts in picks]
        answers = judge.answer([it["question"] for it in items], [it["options"] for it in items], explanations)
        out[row] = torch.tensor([[p[a], p[b]] for p, (a, b, _) in zip(answers.probs, picks)], dtype=torch.float64)
        print(f"  {judge.name} {row}: P(A) {out[row][:, 0].mean():.3f}  P(B) {out[row][:, 1].mean():.3f}", flush=True)
    return out


def check_table(name: str, probs: dict[str, torch.Tensor]) -> tuple[list[str], int]:
    lines, passed = [], 0
    for what, option, high, low in CHECKS:
        col = 0 if option == "A" else 1
        mean, ci = bootstrap_mean(probs[high][:, col] - probs[low][:, col])
        ok = ci[0] > 0
        passed += ok
        lines.append(f"| {name} | {what} | P({option} \\| {high}) − P({option} \\| {low}) | {mean:+.3f} "
                     f"[{ci[0]:+.3f}, {ci[1]:+.3f}] | {'yes' if ok else '**no**'} |")
    return lines, passed


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    items = load_items(ROOT / args.data, split=args.split)
    items = items[:args.items] if args.items else items
    mean_rows, check_rows, verdicts = [], [], []
    for name in args.judges.split(","):
        if name not in JUDGES:
            sys.exit(f"bench_formula_judge: unknown judge '{name}'; choose from {sorted(JUDGES)}")
        cfg = from_dict(JudgeConfig, parse_yaml(JUDGES[name].replace("DTYPE", args.judge_dtype), name), source=f"judge {name}")
        probs = judge_probs(Judge(cfg), items)
        for row, p in probs.items():
            mean_rows.append(f"| {name} | {row} | {p[:, 0].mean():.3f} | {p[:, 1].mean():.3f} |")
        lines, passed = check_table(name, probs)
        check_rows += lines
        verdicts.append(f"- {name}: {passed} of {len(CHECKS)} checks move the judge the right way (interval above 0).")
    command = "python scripts/bench_formula_judge.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "## Does the judge read NOT and OR? (scripts/bench_formula_judge.py)",
        "",
        f"`{command.strip()}` (2-core x86_64 CPU, {args.threads} threads; {time.time() - started:.0f} s). "
        f"{len(items)} '{args.split}' items of `{args.data}`. A = the true option, B = the next option (a "
        "distractor); each literal's label is that option's text, so `'A'` is an oracle formula naming the answer's "
        "words and `NOT 'A'` the same formula negated. Mean probability the judge gives A and B:",
        "",
        "| judge | formula | P(A) | P(B) |",
        "|---|---|---|---|",
        *mean_rows,
        "",
        "Paired differences over items, 95% bootstrap intervals:",
        "",
        "| judge | check | difference | mean [95% CI] | right way? |",
        "|---|---|---|---|---|",
        *check_rows,
        "",
        *verdicts,
    ])
    print(text)
    if not args.no_doc:
        update_section("bench_formula_judge", text)


if __name__ == "__main__":
    main()
