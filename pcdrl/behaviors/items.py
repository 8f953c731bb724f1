"""The behaviour item: what S read, where the encoder reads, the question, and S's true answer.

Every item records the subject model, the layer, the read positions and the split, so that a
dataset can be checked against the PCD that will explain it.
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

FAMILIES = ("continuation", "attributes", "audit")


@dataclass
class Item:
    id: str
    family: str
    """continuation | attributes | audit."""
    attribute: str
    """The question type within the family: a checker name, `next_text`, or an audit file's stem."""
    group: str
    """The prompt or window the item comes from; a split never divides a group."""
    model: str
    layer: int
    input_ids: list[int]
    """The tokens S reads (chat template applied for chat prompts)."""
    read_positions: list[int]
    """Indices into input_ids whose activations the encoder reads."""
    text: str
    """input_ids decoded, for reports."""
    question: str
    options: list[str]
    answer: int
    """Index of S's true option."""
    behaviour: str
    """What S actually wrote (the oracle explanation)."""
    source: str = ""
    split: str = ""
    meta: dict = field(default_factory=dict)

    def record(self) -> dict:
        record = asdict(self)
        record["meta"] = {k: str(v) for k, v in self.meta.items()}
        return record


def check_item(item: Item) -> None:
    """Invariants every builder must keep; a violation is a bug or bad input, named by item id."""
    if len(set(item.options)) != len(item.options):
        raise ValueError(f"item {item.id}: duplicate options {item.options}")
    if not 0 <= item.answer < len(item.options):
        raise ValueError(f"item {item.id}: answer index {item.answer} outside {len(item.options)} options")
    if not item.read_positions or max(item.read_positions) >= len(item.input_ids) or min(item.read_positions) < 0:
        raise ValueError(f"item {item.id}: read positions {item.read_positions} outside {len(item.input_ids)} tokens")


def group_in_test(group: str, test_fraction: float, seed: int) -> bool:
    """A stable hash of the group decides its split, so adding prompts never moves old ones."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def assign_splits(items: list[Item], test_fraction: float, heldout_attributes: list[str], seed: int) -> None:
    for item in items:
        if item.split in ("train", "test"):
            continue  # fixed by the item's source (an audit file's `split` field)
        held = item.attribute in heldout_attributes or group_in_test(item.group, test_fraction, seed)
        item.split = "test" if held else "train"


def balance(items: list[Item], factor: float, seed: int) -> tuple[list[Item], dict[str, str]]:
    """Downsample each attribute so no answer occurs more than ``factor`` × the rarest answer.

    Returns the kept items and, for dropped attributes, why. Which items are kept depends only on
    a hash of their ids, so rebuilding with more prompts keeps earlier choices stable.
    """
    by_attribute: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_attribute[item.attribute].append(item)
    kept, dropped = [], {}
    for attribute, group in by_attribute.items():
        by_answer: dict[str, list[Item]] = defaultdict(list)
        for item in group:
            by_answer[item.options[item.answer]].append(item)
        options = group[0].options
        missing = [o for o in options if not by_answer.get(o)]
        if missing:
            dropped[attribute] = f"S never gave the answer(s) {missing} on {len(group)} prompts"
            continue
        cap = int(factor * min(len(v) for v in by_answer.values()))
        for answer_items in by_answer.values():
            answer_items.sort(key=lambda it: hashlib.sha256(f"{seed}:{it.id}".encode()).hexdigest())
            kept.extend(answer_items[:cap])
    return kept, dropped


def answer_balance(items: list[Item]) -> dict[str, dict[str, float]]:
    """Per family/attribute: the share of each true answer (a judge that always says 'No' gets the 'No' share)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for item in items:
        if item.family != "continuation":  # its options are free text; its balance is the answer position
            counts[f"{item.family}/{item.attribute}"][item.options[item.answer]] += 1
    if any(item.family == "continuation" for item in items):
        positions = Counter(item.answer for item in items if item.family == "continuation")
        counts["continuation/answer_position"] = Counter({f"option_{k}": v for k, v in positions.items()})
    return {
        key: {answer: round(n / sum(c.values()), 3) for answer, n in sorted(c.items())} for key, c in counts.items()
    }
