"""Judge speed and agreement: our calibrated, batched option scoring against generate-then-parse.

    OMP_NUM_THREADS=1 python scripts/bench_judge.py --data runs/quickstart/data [--items 256]

Both judges read the same items with the same explanation (the oracle: S's actual output, so
accuracy means something) through the same loaded model. The baseline is an LLM-judge reward as
usually written for TRL: chat template, options lettered in the prompt, greedy generation, then
parse the letter (or the option's own text) out of the reply.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from behaviors.build import load_items  # noqa: E402
from benchmarks_doc import machine, update_section  # noqa: E402
from models.backends import BackendConfig  # noqa: E402
from simulators.config import JudgeConfig  # noqa: E402
from simulators.judge import Judge  # noqa: E402
from simulators.metrics import expected_accuracy  # noqa: E402
from simulators.render import Explanation, render_explanation  # noqa: E402

LETTERS = "ABCDEFGH"


def pick_items(data: str, n: int, seed: int = 0) -> list[dict]:
    items = sorted(load_items(data), key=lambda it: it["id"])
    random.Random(seed).shuffle(items)
    if len(items) < n:
        raise SystemExit(f"{data} has {len(items)} items; need {n}")
    return items[:n]


def calibrated(judge: Judge, items: list[dict], chunk: int) -> tuple[list[int], float]:
    start = time.perf_counter()
    choices = []
    for i in range(0, len(items), chunk):
        batch = items[i : i + chunk]
        answers = judge.answer([it["question"] for it in batch], [it["options"] for it in batch],
                               [Explanation(oracle=it["behaviour"]) for it in batch])
        choices += [max(range(len(s)), key=lambda j: s[j]) for s in answers.scores]
    return choices, time.perf_counter() - start


def parse_choice(reply: str, options: list[str]) -> int | None:
    text = reply.strip()
    for j, option in enumerate(options):  # "Yes." or the option's own words
        if option and text.lower().startswith(option.lower()):
            return j
    match = re.search(r"\b([A-H])\b", text)
    if match and LETTERS.index(match.group(1)) < len(options):
        return LETTERS.index(match.group(1))
    return None


def generate_then_parse(judge: Judge, items: list[dict], max_new_tokens: int,
                        batch_size: int) -> tuple[list[int | None], float, list[str]]:
    backend = judge.backend
    previous, backend.config.batch_size = backend.config.batch_size, batch_size
    start = time.perf_counter()
    prompts = []
    for it in items:
        explanation = render_explanation(Explanation(oracle=it["behaviour"]), judge.template)
        lettered = "\n".join(f"{LETTERS[j]}) {o}" for j, o in enumerate(it["options"]))
        message = (f"{judge.template.persona}\n\n{explanation}\n\nQuestion: {it['question']}\nOptions:\n{lettered}\n"
                   "Answer with the letter of the correct option only.")
        prompts.append(backend.tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=False))
    ids = [backend.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    replies = backend.generate(ids, max_new_tokens)
    choices = [parse_choice(r, it["options"]) for r, it in zip(replies, items)]
    backend.config.batch_size = previous
    return choices, time.perf_counter() - start, replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="runs/quickstart/data")
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--baseline-batch-sizes", default="8,1",
                        help="generate-then-parse batch sizes (1 is a transformers pipeline's default)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    items = pick_items(args.data, args.items)
    judge = Judge(JudgeConfig(name="bench", backend=BackendConfig(model=args.model, batch_size=args.batch_size)))
    judge.backend.score_options(["warm up"], [[" a"]])  # first-call costs (allocations) out of the timing
    ours, ours_s = calibrated(judge, items, chunk=32)
    truth = [it["answer"] for it in items]
    acc_ours = sum(c == t for c, t in zip(ours, truth)) / len(items)
    baselines = []
    for size in [int(x) for x in args.baseline_batch_sizes.split(",")]:
        theirs, theirs_s, replies = generate_then_parse(judge, items, args.max_new_tokens, size)
        baselines.append((size, theirs, theirs_s, replies))
    size, theirs, theirs_s, replies = baselines[0]
    agreement = sum(a == b for a, b in zip(ours, theirs)) / len(items)
    families = sorted({it["family"] for it in items})
    mix = ", ".join(f"{f}: {sum(it['family'] == f for it in items)}" for f in families)
    rows = [(f"calibrated option scoring (ours), batch {args.batch_size}", ours_s, acc_ours, "0")]
    for b_size, b_choices, b_secs, _ in baselines:
        accuracy = sum(c == t for c, t in zip(b_choices, truth)) / len(items)
        unparsed = sum(c is None for c in b_choices)
        rows.append((f"chat + generate {args.max_new_tokens} tokens + parse, batch {b_size}", b_secs, accuracy, str(unparsed)))
    speedups = ", ".join(f"{b_secs / ours_s:.1f}× against batch {b_size}" for b_size, _, b_secs, _ in baselines)
    lines = [
        f"`OMP_NUM_THREADS=1 python scripts/bench_judge.py --data {args.data} --items {args.items}` "
        f"(judge {args.model}, batch {args.batch_size}; {machine()})",
        "",
        f"{len(items)} items ({mix}), "
        "each with the oracle explanation (S's actual output).",
        "",
        "| judge | items/s | accuracy | unparsed replies |",
        "|---|---|---|---|",
        *[f"| {name} | {len(items) / secs:.2f} | {acc:.3f} | {bad} |" for name, secs, acc, bad in rows],
        "",
        f"Speed-up: **{speedups}**. Ours and the batch-{size} generating judge pick the same option on "
        f"{agreement:.1%} of items.",
        "",
        "Sample replies of the generating judge: " + "; ".join(repr(r.strip()[:40]) for r in replies[:4]),
    ]
    print("\n".join(lines))
    if not args.no_doc:
        update_section("bench_judge", "## Judge speed (scripts/bench_judge.py)\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
