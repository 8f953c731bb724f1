"""The continuation family: which of n continuations did S actually write?

S reads a corpus window (prefix + middle) and writes a few tokens greedily. The distractors are
S's own continuations of other windows of the same split, with the same number of tokens, so
they are fluent model text and never leak test answers into training. With
`distractors: same_source` they are the continuations of the nearest windows of the item's own
source, so a judge cannot win by telling the Bible from a docstring. The encoder reads the
middle, as in pretraining.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

import torch

from pcdrl.behaviors.config import ContinuationConfig
from pcdrl.behaviors.items import Item, group_in_test
from pcdrl.behaviors.subject import generate_cached
from pcdrl.runtime.journal import work_key
from pcdrl.pcd.config import WindowConfig
from pcdrl.pcd.corpus import WindowOrigin, build_windows


def option_text(continuation: str) -> str:
    """Whitespace collapsed: newlines in a continuation would break the judge's answer line."""
    return " ".join(continuation.split())


@dataclass
class Window:
    """A window whose continuation is kept: non-empty and unlike every other window's."""

    ids: list[int]
    continuation: str
    text: str
    group: str
    origin: WindowOrigin
    in_test: bool


def nearest_same_source(origin: WindowOrigin, others: list[WindowOrigin], k: int) -> list[int]:
    """Indices of the k entries of ``others`` from origin's source closest to it in the text (ties: earlier text)."""
    same = [i for i, other in enumerate(others) if other.source == origin.source]
    same.sort(key=lambda i: (abs(others[i].offset - origin.offset), others[i].offset))
    return same[:k]


def pick_distractors(cfg: ContinuationConfig, window: Window, pool: list[Window], rng: random.Random) -> list[Window]:
    """n_options - 1 other windows of the item's split (``pool``) whose continuations become wrong options."""
    split = "test" if window.in_test else "train"
    others = [w for w in pool if w.text != window.text]
    if cfg.distractors == "random":
        if len(others) < cfg.n_options - 1:
            raise ValueError(
                f"continuation: only {len(others) + 1} distinct continuations in the "
                f"{split} split, need {cfg.n_options}; raise continuation.n_items"
            )
        # Sampling texts (not windows) keeps the draws, and so the items, those of the original builder.
        by_text = {w.text: w for w in others}
        return [by_text[t] for t in rng.sample([w.text for w in others], cfg.n_options - 1)]
    near = nearest_same_source(window.origin, [w.origin for w in others], cfg.n_options - 1)
    if len(near) < cfg.n_options - 1:
        raise ValueError(
            f"continuation.distractors=same_source: source {window.origin.source!r} has only {len(near) + 1} "
            f"distinct continuations in the {split} split, need {cfg.n_options} (n_options); "
            "raise continuation.n_items or use distractors=random"
        )
    chosen = [others[i] for i in near]
    rng.shuffle(chosen)  # nearest-first order carries no answer, but one fixed pattern less is cheap
    return chosen


def build_continuation_items(cfg: ContinuationConfig, backend, tokenizer, model: str, layer: int,
                             journal, test_fraction: float, seed: int) -> list[Item]:
    window = WindowConfig(prefix_len=cfg.prefix_len, middle_len=cfg.middle_len, suffix_len=cfg.continuation_tokens)
    windows = build_windows(cfg.corpus, window, tokenizer, seed=seed, origins=True)
    rows = torch.cat([windows.train, windows.heldout])[: cfg.n_items, : cfg.prefix_len + cfg.middle_len].tolist()
    origins = (windows.train_origins + windows.heldout_origins)[: cfg.n_items]
    continuations = generate_cached(
        backend, rows, cfg.continuation_tokens, journal, ignore_eos=True, description="S continues windows"
    )
    # One item per window whose continuation is non-empty and unlike every other window's.
    seen: set[str] = set()
    kept: list[Window] = []
    for ids, origin, continuation in zip(rows, origins, continuations):
        text = option_text(continuation)
        if text and text not in seen:
            seen.add(text)
            group = f"window/{work_key(ids)[:12]}"
            kept.append(Window(ids, continuation, text, group, origin, group_in_test(group, test_fraction, seed)))
    pools: dict[bool, list[Window]] = {True: [], False: []}
    for w in kept:
        pools[w.in_test].append(w)
    items = []
    read = list(range(cfg.prefix_len, cfg.prefix_len + cfg.middle_len))
    for w in kept:
        rng = random.Random(f"{seed}:{w.group}")
        distractors = pick_distractors(cfg, w, pools[w.in_test], rng)
        answer = rng.randrange(cfg.n_options)  # the true option's position is uniform
        chosen = distractors[:answer] + [w] + distractors[answer:]
        items.append(Item(
            id=f"continuation/{w.group.split('/')[1]}", family="continuation", attribute="next_text", group=w.group,
            model=model, layer=layer, input_ids=list(w.ids), read_positions=read, text=tokenizer.decode(w.ids),
            question=cfg.question, options=[c.text for c in chosen], answer=answer, behaviour=w.continuation,
            source=w.origin.source, split="test" if w.in_test else "train",
            meta={"document": w.origin.document, "offset": w.origin.offset, "distractors": cfg.distractors,
                  "option_sources": json.dumps([c.origin.source for c in chosen])},
        ))
    return items


# --- how much an option can be matched by words alone ------------------------------------------

_STOPWORDS = frozenset(
    "about after all also and any are because been before but can could did does for from had has have her him his "
    "how into its may more not now one only other our out over shall she should some such than that the their them "
    "then there these they this those through too upon very was were what when where which who will with would you "
    "your unto thee thou thy thine hath doth ye".split()
)


def content_words(text: str) -> set[str]:
    """Lower-cased words of three letters or more, function words left out."""
    return {w for w in re.findall(r"[a-z][a-z']+", text.lower()) if len(w) >= 3 and w not in _STOPWORDS}


def option_overlap(items: list[tuple[list[str], int, str]]) -> dict[str, float]:
    """For (options, answer, reference text) triples: the share of true options, and of distractors, that share a
    content word with their item's reference. A true option far above the distractors can be picked by copying."""
    true_hits = distractor_hits = distractors = 0
    for options, answer, reference in items:
        words = content_words(reference)
        for i, option in enumerate(options):
            hit = bool(content_words(option) & words)
            if i == answer:
                true_hits += hit
            else:
                distractor_hits += hit
                distractors += 1
    return {"true_option": round(true_hits / max(len(items), 1), 3),
            "distractor": round(distractor_hits / max(distractors, 1), 3)}


def own_source_share(option_sources: list[list[str]], answers: list[int]) -> float:
    """Share of items whose distractors all come from the true option's source."""
    own = [all(s == sources[answer] for s in sources) for sources, answer in zip(option_sources, answers)]
    return round(sum(own) / max(len(own), 1), 3)
