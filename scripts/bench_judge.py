"""Judge speed and agreement: our calibrated, batched option scoring against generate-then-parse.

    OMP_NUM_THREADS=1 python scripts/bench_judge.py --data runs/quickstart/data [--items 256]
    OMP_NUM_THREADS=1 python scripts/bench_judge.py --speed [--threads 1,2]   # explanations/s per scoring path

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

from pcdrl.behaviors.build import load_items  # noqa: E402
from benchmarks_doc import machine, update_section  # noqa: E402
from pcdrl.models.backends import BackendConfig  # noqa: E402
from pcdrl.simulators.config import JudgeConfig  # noqa: E402
from pcdrl.simulators.judge import Judge  # noqa: E402
from pcdrl.simulators.render import Explanation, render_explanation  # noqa: E402

LETTERS = "ABCDEFGH"
BASELINE_REV = "af5e051"  # the last commit before sorted batches, cache views and true-only scoring


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


# ----------------------------------------------------------------- --speed: scoring paths on RL-like prompts
WORDS = ("of and the to in is that for it with as was on be at by this had not are but from or have an they which one "
         "you were her all she there would their we him been has when who will more no if out so said what up its "
         "about into than them can only other new some could time these two may then do first any my now such like "
         "our over man me even most made after also did many before must through back years where much your way "
         "well down should because each just those people how too little state good very make world still own see "
         "men work long get here between both life being under never day same another know while last might us "
         "great old year off come since against go came right used take three God Lord And The import return def "
         "self").split()


def rl_like_rollout(n_items: int, group: int, k: int = 8, seed: int = 0):
    """What one GRPO step sends the judge (configs/rl/grpo_concepts.yaml: k=8 labels, G samples per item), built
    without a quickstart run: labels shaped like the quickstart's (`the words "of", "and", "And"`), the
    continuation question, 4 options of ~6 tokens, each item's G samples with their own 8 labels."""
    rng = random.Random(seed)
    pool = ["the words " + ", ".join(f'"{w}"' for w in rng.sample(WORDS, rng.choice([1, 2, 3, 3, 4])))
            for _ in range(200)]
    questions, options, truth, explanations = [], [], [], []
    for _ in range(n_items):
        opts = [" ".join(rng.sample(WORDS, rng.choice([4, 5, 6]))) for _ in range(4)]
        answer = rng.randrange(4)
        for _ in range(group):
            questions.append("Which text will the model write next?")
            options.append(opts)
            truth.append(answer)
            explanations.append(Explanation(labels=tuple(rng.sample(pool, k))))
    return questions, options, truth, explanations


def backend_at(rev: str):
    """The HFBackend class of pcdrl/models/backends/hf.py at a git revision ("today's" scoring, for comparison)."""
    import subprocess
    import types

    root = Path(__file__).resolve().parents[1]
    # The file moved into the pcdrl namespace; an older revision has it at models/backends/hf.py and imports
    # the old top-level names, which map one to one onto pcdrl.*.
    for path in ("pcdrl/models/backends/hf.py", "models/backends/hf.py"):
        shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True)
        if shown.returncode == 0:
            break
    else:
        raise SystemExit(f"--speed: revision {rev} has no pcdrl/models/backends/hf.py or models/backends/hf.py")
    source = re.sub(r"^(\s*)(from|import) (models|pcd|configs)\b", r"\1\2 pcdrl.\3", shown.stdout, flags=re.M)
    module = types.ModuleType(f"hf_at_{rev}")
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module.HFBackend


def load() -> str:
    return os.getloadavg().__repr__() if hasattr(os, "getloadavg") else "?"


def run_speed(args) -> None:
    from pcdrl.models.backends.hf import HFBackend
    from pcdrl.models.loading import load_model, load_tokenizer

    tokenizer = load_tokenizer(args.model)
    models = {"none": load_model(args.model), "int8": load_model(args.model, "int8")}
    Today = backend_at(args.baseline_rev)

    def judge(quantize="none", batch=args.batch_size, backend_class=HFBackend) -> Judge:
        cfg = JudgeConfig(name="bench", backend=BackendConfig(model=args.model, batch_size=batch, quantize=quantize))
        return Judge(cfg, backend=backend_class(cfg.backend, model=models[quantize], tokenizer=tokenizer))

    n_items = max(1, args.explanations // 4)
    questions, options, truth, explanations = rl_like_rollout(n_items, 4)
    variants = [  # (name, judge, true option only)
        (f"every option, hf backend at {args.baseline_rev} (before)", judge(backend_class=Today), False),
        ("every option (sorted batches, cache views)", judge(), False),
        ("true option only", judge(), True),
        ("true option only, batch 16", judge(batch=16), True),
        ("every option, int8 (dynamic, all linears)", judge("int8"), False),
        ("true option only, int8 (dynamic, all linears)", judge("int8"), True),
    ]
    for _, j, _ in variants:  # the calibration prompts are cached for a judge's lifetime: out of the timing
        j.answer(questions, options, [None] * len(questions))
    threads = [int(t) for t in args.threads.split(",")]
    load_before = load()
    rows = []
    for name, j, true_only in variants:
        per_thread = []
        for t in threads:
            torch.set_num_threads(t)
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                j.answer(questions, options, explanations, only=truth if true_only else None)
                best = min(best, time.perf_counter() - start)
            per_thread.append(len(questions) / best / t)
        rows.append((name, per_thread))
        print(name, [f"{x:.2f}" for x in per_thread], flush=True)
    torch.set_num_threads(threads[0])
    load_after = load()
    # Same answers? fp32 paths against the "before" backend; int8 against fp32 on more items.
    before, full, only = (variants[i][1].answer(questions, options, explanations, only=truth if i == 2 else None)
                          for i in range(3))
    gap = max(abs(a - b) for r, s in zip(before.scores, full.scores) for a, b in zip(r, s))
    bitwise = all(o[a] == f[a] for o, f, a in zip(only.scores, full.scores, truth))
    agreement = int8_agreement(args, variants, models)
    base = rows[0][1]
    lines = [
        f"`OMP_NUM_THREADS=1 python scripts/bench_judge.py --speed --explanations {args.explanations} "
        f"--agreement-items {args.agreement_items} --repeats {args.repeats} --threads {args.threads}` (judge {args.model}, batch {args.batch_size}; {machine()}; load average "
        f"{load_before} before, {load_after} after: a shared machine)",
        "",
        f"One RL-like step: {len(questions)} explanations ({n_items} items × 4 samples), 8 labels each like "
        "`the words \"of\", \"and\"`, the continuation question, 4 options of 4-6 words; calibration prompts "
        f"cached beforehand (as in training). Best of {args.repeats} timed calls.",
        "",
        "| scoring path | " + " | ".join(f"explanations/s per core, {t} thread(s)" for t in threads)
        + " | speed-up (1st column) |",
        "|---|" + "---|" * len(threads) + "---|",
        *[f"| {name} | " + " | ".join(f"{x:.2f}" for x in per) + f" | {per[0] / base[0]:.2f}× |" for name, per in rows],
        "",
        f"Same answers: the new full scoring against the {args.baseline_rev} backend, largest |score gap| "
        f"{gap:.1e} nats; true-only scores equal the full scoring's true-option scores bit for bit: {bitwise}.",
        "",
        agreement,
    ]
    print("\n".join(lines))
    if not args.no_doc:
        update_section("bench_judge_speed", "## Judge scoring paths (scripts/bench_judge.py --speed)\n\n"
                       + "\n".join(lines))


def int8_agreement(args, variants, models) -> str:
    """argmax agreement and mean |PMI gap| of each int8 judge with the fp32 one, every option scored."""
    questions, options, truth, explanations = rl_like_rollout(args.agreement_items, 1, seed=1)
    fp32 = variants[1][1].answer(questions, options, explanations)
    out = [f"int8 against fp32 on {len(questions)} items (every option, PMI):", "",
           "| judge | argmax agreement with fp32 | mean abs(PMI gap), nats | accuracy (fp32: "
           f"{sum(max(range(4), key=s.__getitem__) == t for s, t in zip(fp32.scores, truth)) / len(truth):.3f}) |",
           "|---|---|---|---|"]
    for name, j, true_only in variants:
        if true_only or j.cfg.backend.quantize == "none":
            continue
        got = j.answer(questions, options, explanations)
        picks = [(max(range(4), key=a.__getitem__), max(range(4), key=b.__getitem__))
                 for a, b in zip(got.scores, fp32.scores)]
        gap = sum(abs(x - y) for a, b in zip(got.scores, fp32.scores) for x, y in zip(a, b)) / (4 * len(truth))
        accuracy = sum(p == t for (p, _), t in zip(picks, truth)) / len(truth)
        out.append(f"| {j.cfg.backend.quantize} | {sum(p == q for p, q in picks) / len(picks):.3f} | {gap:.3f} | "
                   f"{accuracy:.3f} |")
    return "\n".join(out)


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
    parser.add_argument("--speed", action="store_true",
                        help="explanations/s of each scoring path on RL-like prompts (see run_speed)")
    parser.add_argument("--explanations", type=int, default=64, help="--speed: explanations per timed call")
    parser.add_argument("--threads", default="1", help="--speed: torch thread counts to time, e.g. 1,2")
    parser.add_argument("--repeats", type=int, default=2, help="--speed: timed calls per row (the best is kept)")
    parser.add_argument("--agreement-items", type=int, default=64, help="--speed: items for int8 vs fp32 agreement")
    parser.add_argument("--baseline-rev", default=BASELINE_REV,
                        help="--speed: git revision whose pcdrl/models/backends/hf.py is 'today' (before the faster path)")
    args = parser.parse_args()
    if args.speed:
        run_speed(args)
        return
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
