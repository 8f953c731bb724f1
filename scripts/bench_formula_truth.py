"""Do sampled formulas parse and hold on their items? Counted over many samples, with an independent truth check.

For a formula run (`pcdrl train` with policy.kind=formulas), this rebuilds the warm-started policy from the run's
config, loads the run's RL policy from its latest checkpoint, and samples formulas at the training temperature on
the training and held-out items (items repeat until --samples is reached). Each sample is checked four ways:

- the id form parses back to the same tree: `parse(to_id_text(f)) == f`;
- the text the judge reads parses back with the labels: `parse(to_text(f, labels), labels) == f` (a formula naming
  a label that two concepts share cannot, and is counted apart);
- it fits the limits: size <= formula.max_literals and depth <= formula.max_depth;
- it is true on its item, recomputed from the encoder's per-position top-k (`explanations.is_true` on the top-k
  indices at each read position), not from the fired vector the truth mask read while sampling.

The same policies are also sampled without the truth mask, to show what the mask does.

    python scripts/bench_formula_truth.py --run runs/formulas/grpo-mask/seed0 --samples 12000
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from benchmarks_doc import update_section  # noqa: E402
from pcdrl.behaviors.build import load_items  # noqa: E402
from pcdrl.behaviors.encoded import encode_items, load_labelled_pcd  # noqa: E402
from pcdrl.evaluation.eval_runs import find_run  # noqa: E402
from pcdrl.explanations import FormulaError, concepts, depth, is_true, parse, size, to_id_text, to_text  # noqa: E402
from pcdrl.rl.formula_policy import sample  # noqa: E402
from pcdrl.rl.formula_rollout import load_formula_policy, prepare_formulas  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/formulas/grpo-mask/seed0", help="a formula run folder (pcdrl train)")
    parser.add_argument("--samples", type=int, default=12000, help="formulas per (policy, split, mask) cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    return parser.parse_args(argv)


def check(formulas, rows: list[int], top_indices: list[torch.Tensor], labels: dict[int, str], n_concepts: int,
          cfg) -> dict:
    """The four checks over formulas, formula i sampled for item rows[i] (its per-position top-k indices [P, k])."""
    counts_by_label = Counter(labels.values())
    shared = {lab for lab, n in counts_by_label.items() if n > 1}
    counts = dict(samples=len(formulas), id_roundtrip=0, text_roundtrip=0, shared_label=0, within_limits=0, true=0,
                  size_sum=0)
    for f, row in zip(formulas, rows):
        counts["id_roundtrip"] += parse(to_id_text(f)) == f
        text = to_text(f, labels)
        if any(labels[c] in shared for c in concepts(f)):
            counts["shared_label"] += 1
        else:
            try:
                counts["text_roundtrip"] += parse(text, labels) == f
            except FormulaError:
                pass
        counts["within_limits"] += size(f) <= cfg.max_literals and depth(f) <= cfg.max_depth
        counts["true"] += is_true(f, top_indices[row], n_concepts)
        counts["size_sum"] += size(f)
    return counts


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    run = find_run(ROOT / args.run)
    cfg = run.config
    if cfg.policy.kind != "formulas":
        sys.exit(f"bench_formula_truth: {run.path} is a {cfg.policy.kind} run; give a formula run (policy.kind=formulas)")
    train_items, eval_items = load_split(cfg, "train"), load_split(cfg, "test")
    labelled = load_labelled_pcd(cfg.pcd)
    train, held_out = encode_items(labelled, train_items, cfg.data), encode_items(labelled, eval_items, cfg.data)
    torch.manual_seed(cfg.seed)  # the policy's init, as in `pcdrl train`
    setup = prepare_formulas(cfg, labelled, train, held_out, train_items, eval_items)
    rl = load_formula_policy(cfg, labelled.pcd.encoder, train.pooled.shape[1], run.checkpoint)
    policies = {"warm start": setup.reference, "rl": rl}
    splits = {"train": (train, setup.fired_train), "test": (held_out, setup.fired_eval)}
    generator = torch.Generator().manual_seed(args.seed)
    lines, all_ok = [], True
    for split, (encoded, fired) in splits.items():
        with torch.no_grad():  # the encoder's top-k at each read position: what truth is recomputed from
            tops = [labelled.pcd.encoder(a).top_indices for a in encoded.activations]
        rows = [i % len(tops) for i in range(args.samples)]
        for name, policy in policies.items():
            for masked in (True, False):
                with torch.no_grad():
                    drawn = sample(policy, encoded.pooled[rows], cfg.formula, setup.allowed,
                                   fired[rows] if masked else None, cfg.formula.temperature, generator)
                c = check(drawn.formulas, rows, tops, labelled.labels, labelled.pcd.encoder.n_concepts, cfg.formula)
                n, judged = c["samples"], c["samples"] - c["shared_label"]
                if masked:
                    all_ok &= (c["id_roundtrip"] == n and c["text_roundtrip"] == judged and c["true"] == n
                               and c["within_limits"] == n)
                lines.append(f"| {name} | {split} | {'yes' if masked else 'no'} | {n:,} | {c['id_roundtrip'] / n:.2%} | "
                             f"{c['text_roundtrip'] / max(judged, 1):.2%} ({c['shared_label']}) | "
                             f"{c['within_limits'] / n:.2%} | **{c['true'] / n:.2%}** | {c['size_sum'] / n:.2f} |")
                print(lines[-1], flush=True)
    command = "python scripts/bench_formula_truth.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "## Sampled formulas parse and are true (scripts/bench_formula_truth.py)",
        "",
        f"`{command.strip()}` (2-core x86_64 CPU, 1 thread; {time.time() - started:.0f} s). Run: `{args.run}` "
        f"(formula.max_literals={cfg.formula.max_literals}, max_depth={cfg.formula.max_depth}, operators "
        f"{cfg.formula.operators}, temperature {cfg.formula.temperature}). Items repeat until each cell has its "
        "samples. Truth is recomputed from the encoder's top-k at each read position (`explanations.is_true`), not "
        "from the fired vector the mask read. The judge-text column leaves out formulas naming a label that two "
        "concepts share (count in brackets): such text cannot name one concept, so it is not expected to parse back.",
        "",
        "| policy | items | truth mask | samples | id form parses back | judge text parses back (shared label) | "
        "within limits | true on its item | mean literals |",
        "|---|---|---|---|---|---|---|---|---|",
        *lines,
        "",
        ("Every formula sampled under the truth mask parsed back, fit the limits and was true on its item." if all_ok
         else "**Some formula sampled under the truth mask failed a check: see the rows above.**"),
        "The rows without the mask show how often the same policies write formulas that are false on the item: the "
        "mask, not the warm start, is what makes every shown formula true.",
    ])
    print(text)
    if not args.no_doc:
        update_section("bench_formula_truth", text)
    if not all_ok:
        sys.exit(1)


def load_split(cfg, split: str) -> list[dict]:
    """The run's items of one split in its families, as `pcdrl train` reads them (all of them, no limit)."""
    return [it for it in load_items(cfg.data, split=split) if it["family"] in cfg.families]


if __name__ == "__main__":
    main()
