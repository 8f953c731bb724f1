"""The continuation family: which of n continuations did S actually write?

S reads a corpus window (prefix + middle) and writes a few tokens greedily. The distractors are
S's own continuations of other windows of the same split, with the same number of tokens, so
they are fluent model text and never leak test answers into training. The encoder reads the
middle, as in pretraining.
"""
from __future__ import annotations

import random

import torch

from behaviors.config import ContinuationConfig
from behaviors.items import Item, group_in_test
from behaviors.subject import generate_cached
from configs.journal import work_key
from pcd.config import WindowConfig
from pcd.corpus import build_windows


def option_text(continuation: str) -> str:
    """Whitespace collapsed: newlines in a continuation would break the judge's answer line."""
    return " ".join(continuation.split())


def build_continuation_items(cfg: ContinuationConfig, backend, tokenizer, model: str, layer: int,
                             journal, test_fraction: float, seed: int) -> list[Item]:
    window = WindowConfig(prefix_len=cfg.prefix_len, middle_len=cfg.middle_len, suffix_len=cfg.continuation_tokens)
    windows = build_windows(cfg.corpus, window, tokenizer, seed=seed)
    rows = torch.cat([windows.train, windows.heldout])[: cfg.n_items, : cfg.prefix_len + cfg.middle_len].tolist()
    continuations = generate_cached(
        backend, rows, cfg.continuation_tokens, journal, ignore_eos=True, description="S continues windows"
    )
    # One item per window whose continuation is non-empty and unlike every other window's.
    seen: set[str] = set()
    kept = []
    for ids, continuation in zip(rows, continuations):
        text = option_text(continuation)
        if text and text not in seen:
            seen.add(text)
            kept.append((ids, continuation, text, f"window/{work_key(ids)[:12]}"))
    pools: dict[bool, list[str]] = {True: [], False: []}
    for _, _, text, group in kept:
        pools[group_in_test(group, test_fraction, seed)].append(text)
    items = []
    read = list(range(cfg.prefix_len, cfg.prefix_len + cfg.middle_len))
    for ids, continuation, text, group in kept:
        in_test = group_in_test(group, test_fraction, seed)
        rng = random.Random(f"{seed}:{group}")
        others = [t for t in pools[in_test] if t != text]
        if len(others) < cfg.n_options - 1:
            raise ValueError(
                f"continuation: only {len(others) + 1} distinct continuations in the "
                f"{'test' if in_test else 'train'} split, need {cfg.n_options}; raise continuation.n_items"
            )
        options = rng.sample(others, cfg.n_options - 1)
        answer = rng.randrange(cfg.n_options)  # the true option's position is uniform
        options.insert(answer, text)
        items.append(Item(
            id=f"continuation/{group.split('/')[1]}", family="continuation", attribute="next_text", group=group,
            model=model, layer=layer, input_ids=list(ids), read_positions=read, text=tokenizer.decode(ids),
            question=cfg.question, options=options, answer=answer, behaviour=continuation,
            source=",".join(cfg.corpus.sources) if cfg.corpus.path is None else cfg.corpus.path,
            split="test" if in_test else "train",
        ))
    return items
