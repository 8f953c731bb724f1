"""Who answers which item under which condition. Pure functions of (items, conditions, per-participant, seed, slot).

The design is a Latin square over chunks of items. The items are shuffled and cut into chunks of about
`per_participant` (at least that many; the remainder is spread over the chunks); participant slots come in blocks of (chunks × conditions). Within a block, every chunk is
answered once under each rotation of its condition order, so:
- each participant sees every condition equally often (counts differ by at most one), in a random order;
- each block of participants covers every (item, condition) pair exactly once, so a full block of simulated
  participants answers exactly what `pcdrl eval` scored.
Slots are handed out in a seeded random order within each block, so the first participants are spread over
the chunks.
"""
from __future__ import annotations

import random


def n_chunks(n_items: int, per_participant: int) -> int:
    """Chunks of at least `per_participant` items (a short tail joins the others), so nobody misses a condition."""
    return max(1, n_items // per_participant)


def block_size(n_items: int, n_conditions: int, per_participant: int) -> int:
    """Participants in one block: the number that answers every (item, condition) pair once."""
    return n_chunks(n_items, per_participant) * n_conditions


def _chunks(n_items: int, per_participant: int, seed: int, block: int) -> list[list[int]]:
    order = list(range(n_items))
    random.Random(f"{seed}:items:{block}").shuffle(order)
    count = n_chunks(n_items, per_participant)
    # Near-equal chunks (sizes differ by at most one) rather than full ones and a short tail.
    bounds = [round(i * n_items / count) for i in range(count + 1)]
    return [order[bounds[i]:bounds[i + 1]] for i in range(count)]


def plan(n_items: int, conditions: list[str], per_participant: int, seed: int, slot: int) -> list[tuple[int, str]]:
    """The (item index, condition) pairs participant `slot` answers, in the order they are shown."""
    if n_items < 1 or not conditions or per_participant < 1:
        raise ValueError(f"a study needs items ({n_items}), conditions ({conditions}) and items per participant "
                         f"({per_participant})")
    size = block_size(n_items, len(conditions), per_participant)
    block, within = divmod(slot, size)
    order = list(range(size))
    random.Random(f"{seed}:slots:{block}").shuffle(order)
    chunk_index, rotation = divmod(order[within], len(conditions))
    chunk = _chunks(n_items, per_participant, seed, block)[chunk_index]
    condition_order = list(conditions)
    random.Random(f"{seed}:conditions:{block}:{chunk_index}").shuffle(condition_order)
    pairs = [(item, condition_order[(j + rotation) % len(conditions)]) for j, item in enumerate(chunk)]
    random.Random(f"{seed}:shown:{slot}").shuffle(pairs)
    return pairs
