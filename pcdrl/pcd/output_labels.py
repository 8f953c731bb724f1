"""Output-centric labels: the tokens S writes next where a concept fires (pure tensor and string code).

A label built from where a concept fires (its input side) tells a judge little about what S will
write; one built from what S predicts next at those positions (its output side) tells it more
(Gur-Arieh et al. 2025, output-centric feature descriptions). Label forms, one per `label.kind`:

    input    the words "of", "and", "And"        where it fires (today's token-statistics label)
    output   then "the", "a", "his"              what S predicts next where it fires
    both     on "of", "and"; then "the", "a"     both, two tokens a side (14 SmolLM2 tokens)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

KINDS = ("input", "output", "both")


@dataclass(frozen=True)
class OutputToken:
    """A token S predicts next where a concept fires, with how much more than usual."""

    token_id: int
    p_fires: float
    """Mean p(token) over the positions where the concept fires."""
    p_base: float
    """Mean p(token) over all positions."""
    lift: float
    """p_fires / p_base."""


def sparse_mean(top_ids: torch.Tensor, top_probs: torch.Tensor, vocab: int) -> torch.Tensor:
    """Mean over P positions of next-token distributions kept as their top K: [P, K] ids and probs -> [V].

    Tokens outside a position's top K count as 0 there. That underestimates p_fires (never by more
    than the K-th probability at a position), so lifts err low, never high.
    """
    total = torch.zeros(vocab, dtype=torch.float64)
    total.index_add_(0, top_ids.reshape(-1), top_probs.reshape(-1).double())
    return (total / max(len(top_ids), 1)).float()


def lift_tokens(p_fires: torch.Tensor, p_base: torch.Tensor, top: int, min_p: float) -> list[OutputToken]:
    """The ``top`` tokens with the highest lift p_fires / p_base among those with p_fires >= ``min_p`` and lift > 1.

    Why the floor: lift alone favours rare tokens. A token S gives 1e-6 on average and 1e-4 at one
    firing has lift 100, yet S almost never writes it there; the floor keeps only tokens S would
    plausibly write after a firing, and lift then says which of those are particular to the concept.
    If no token clears both bars, the single most probable token after a firing stands in: it is
    still what S is most likely to write there, which is what a reader of the label wants to know.
    """
    lift = p_fires / p_base.clamp_min(1e-12)
    eligible = ((p_fires >= min_p) & (lift > 1)).nonzero().flatten()
    if len(eligible) == 0:
        eligible = p_fires.argmax().view(1)
    order = eligible[torch.argsort(lift[eligible], descending=True, stable=True)][:top]
    return [OutputToken(int(t), float(p_fires[t]), float(p_base[t]), float(lift[t])) for t in order]


# --- label text ------------------------------------------------------------------------------


def token_text(text: str) -> str:
    """A token's text as a label shows it: stripped, whitespace-only tokens named."""
    return text.strip() or ("<newline>" if "\n" in text else "<space>")


def distinct(words: list[str]) -> list[str]:
    """Words in order, without repeats (" the" and "the" both read "the")."""
    return list(dict.fromkeys(words))


def quoted(words: list[str]) -> str:
    return ", ".join(f'"{w}"' for w in words)


def output_phrase(words: list[str]) -> str:
    """The output side alone: ``then "the", "a", "his"``."""
    return f"then {quoted(words)}"


def render_label(kind: str, input_label: str, output_words: list[str], *, words: int = 3, both_words: int = 2,
                 input_words: list[str] | None = None) -> str:
    """The label of ``kind`` from its two sides.

    ``input_label`` is the input-side label (token statistics or the explainer LM's). With
    ``input_words`` (token statistics), the input side of ``both`` is re-listed short as
    ``on "w1", "w2"``; without (an LM label), the LM's text is kept whole.
    """
    if kind == "input":
        return input_label
    if kind == "output":
        return output_phrase(output_words[:words])
    if kind == "both":
        left = input_label if input_words is None else f"on {quoted(input_words[:both_words])}"
        return f"{left}; {output_phrase(output_words[:both_words])}"
    raise ValueError(f"kind: {kind!r} must be one of {', '.join(KINDS)}")


def rerender_concepts(concepts: dict, kind: str, *, words: int = 3, both_words: int = 2) -> dict:
    """A copy of a concepts.json whose labels are re-rendered as ``kind`` from the two sides each entry keeps
    (`input_label`, `input_tokens`, `output_tokens`): another label kind without running S or a labeller again.
    Entries written before output labels existed (no `output_tokens`) are left as they are."""
    entries = []
    for entry in concepts.get("concepts", []):
        entry = dict(entry)
        if "output_tokens" in entry and entry.get("input_label"):
            output_words = distinct([token_text(t["token"]) for t in entry["output_tokens"]])
            input_words = entry.get("input_tokens") if entry.get("labeller") == "tokens" else None
            entry["label"] = render_label(kind, entry["input_label"], output_words, words=words, both_words=both_words,
                                          input_words=input_words)
            entry["kind"] = kind
        entries.append(entry)
    return {**concepts, "label_kind": kind, "concepts": entries}
