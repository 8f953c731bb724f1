"""Top-activating contexts per concept, from encoder outputs over token windows (pure tensor code)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Firing:
    """One token where a concept was in the top-k."""

    window: int
    position: int
    """Index within the window (prefix + middle coordinates)."""
    value: float


def firings_by_concept(top_indices: torch.Tensor, top_values: torch.Tensor, offset: int) -> dict[int, list[Firing]]:
    """Group [N, M, k] top-k outputs by concept, strongest first. ``offset`` maps middle to window positions."""
    n, m, k = top_indices.shape
    window = torch.arange(n).view(n, 1, 1).expand(n, m, k).reshape(-1)
    position = (torch.arange(m).view(1, m, 1).expand(n, m, k) + offset).reshape(-1)
    concept, value = top_indices.reshape(-1), top_values.reshape(-1)
    order = torch.argsort(value, descending=True, stable=True)
    grouped: dict[int, list[Firing]] = {}
    for i in order.tolist():
        grouped.setdefault(int(concept[i]), []).append(Firing(int(window[i]), int(position[i]), float(value[i])))
    return grouped


def split_by_window(firings: list[Firing], parity: int) -> list[Firing]:
    """Even windows explain, odd windows score: a label is never scored on the text it was written from."""
    return [f for f in firings if f.window % 2 == parity]


def render_context(tokenizer, window_ids: torch.Tensor, position: int, after: int, mark: tuple[str, str] = ("[[", "]]")) -> str:
    """The window's text up to ``position`` + ``after`` tokens, with the token at ``position`` marked."""
    before = tokenizer.decode(window_ids[:position])
    token = tokenizer.decode(window_ids[position : position + 1])
    rest = tokenizer.decode(window_ids[position + 1 : position + 1 + after])
    leading = token[: len(token) - len(token.lstrip())]
    return f"{before}{leading}{mark[0]}{token.strip()}{mark[1]}{rest}".replace("\n", " ").strip()


def split_at(tokenizer, window_ids: torch.Tensor, position: int) -> tuple[str, str]:
    """(text before the token, the token's own text with its leading space)."""
    return tokenizer.decode(window_ids[:position]), tokenizer.decode(window_ids[position : position + 1])


def top_firing_tokens(tokenizer, windows: torch.Tensor, firings: list[Firing], top: int = 3) -> list[str]:
    """The tokens a concept fires on most, by activation-weighted count, as stripped text."""
    weights: dict[str, float] = {}
    for f in firings:
        text = tokenizer.decode(windows[f.window, f.position : f.position + 1]).strip() or "<space>"
        weights[text] = weights.get(text, 0.0) + max(f.value, 0.0) + 1e-6
    return sorted(weights, key=lambda t: (-weights[t], t))[:top]


def token_statistics_label(tokenizer, windows: torch.Tensor, firings: list[Firing], top: int = 3) -> str:
    """The fast fallback label (input side): the tokens a concept fires on most."""
    return "the words " + ", ".join(f'"{t}"' for t in top_firing_tokens(tokenizer, windows, firings, top))
