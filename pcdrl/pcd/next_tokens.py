"""What comes next, for output-centric labels: S's next-token predictions over the labelling windows,
and the PCD decoder's reading of one concept on its own.

    windows ─► S (adapter off, full forward) ─► top-K next tokens per middle position + base rate
    W_emb[:, c] × median firing value ─► one soft token ─► decoder (adapter on) ─► top next tokens
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# A private helper of pcdrl/pcd/activations.py: the one place that knows how to switch the decoder's LoRA off.
from pcdrl.pcd.activations import base_weights
from pcdrl.pcd.examples import Firing
from pcdrl.pcd.model import PCD
from pcdrl.pcd.output_labels import OutputToken, lift_tokens, sparse_mean

KEEP_TOP = 64
"""Next tokens kept per position; p_fires counts only these (pcdrl/pcd/output_labels.py `sparse_mean`)."""
OUTPUT_TOP = 8
"""Output tokens kept per concept in concepts.json (labels list fewer)."""
DECODER_TOP = 5
"""Tokens kept of the decoder's reading of each concept."""


@dataclass
class NextTokens:
    """S's next-token predictions at every middle position of the labelling windows."""

    top_ids: torch.Tensor
    """[N, M, K] the K most probable next tokens at each middle position, most probable first."""
    top_probs: torch.Tensor
    """[N, M, K] their probabilities."""
    base: torch.Tensor
    """[V] the mean next-token distribution over the middle positions of the even (explaining) windows."""
    prefix: int
    """Window position of middle position 0."""

    @property
    def greedy(self) -> torch.Tensor:
        """[N, M] the token S writes next (greedy) at each middle position."""
        return self.top_ids[..., 0]

    def output_tokens(self, firings: list[Firing], top: int, min_p: float) -> list[OutputToken]:
        """The tokens S predicts next where these firings are, ranked by lift over ``base``."""
        windows = torch.tensor([f.window for f in firings])
        middle = torch.tensor([f.position - self.prefix for f in firings])
        p_fires = sparse_mean(self.top_ids[windows, middle], self.top_probs[windows, middle], len(self.base))
        return lift_tokens(p_fires, self.base, top, min_p)


@torch.no_grad()
def subject_next_tokens(pcd: PCD, windows: torch.Tensor, prefix: int, batch_size: int = 32) -> NextTokens:
    """Run S's full forward over ``windows`` [N, T] (prefix + middle tokens) and keep its next-token predictions."""
    ids, probs, base_sum, base_count = [], [], None, 0
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size].to(pcd.device)
        with base_weights(pcd.decoder):  # S's own predictions, not the decoder's
            # Only the middle positions' logits: the LM head over a 49k vocabulary is a fifth of S's cost per token.
            middle = batch.shape[1] - prefix
            logits = pcd.decoder(input_ids=batch, use_cache=False, logits_to_keep=middle).logits[:, -middle:].float()
        p = torch.softmax(logits, dim=-1)
        even = p[(torch.arange(start, start + len(batch)) % 2 == 0).to(p.device)]
        base_sum = even.sum((0, 1)).double() if base_sum is None else base_sum + even.sum((0, 1)).double()
        base_count += even.shape[0] * even.shape[1]
        top = p.topk(min(KEEP_TOP, p.shape[-1]), dim=-1)
        ids.append(top.indices.cpu())
        probs.append(top.values.cpu())
    base = (base_sum / max(base_count, 1)).float().cpu()
    return NextTokens(torch.cat(ids), torch.cat(probs), base, prefix)


@torch.no_grad()
def decoder_next_tokens(pcd: PCD, concepts: list[int], values: list[float], batch_size: int = 256) -> dict[int, list[tuple[int, float]]]:
    """The decoder's top next tokens when concept c alone, at firing value v, is its only input.

    The soft token is W_emb[:, c] · v, what the encoder would emit if c were the only concept in the top-k;
    nothing follows it, so the decoder's prediction at that position is its reading of the concept.
    """
    out: dict[int, list[tuple[int, float]]] = {}
    weight = pcd.encoder.W_emb.weight  # [d, m]
    for start in range(0, len(concepts), batch_size):
        chunk = concepts[start : start + batch_size]
        scale = torch.tensor(values[start : start + batch_size], device=weight.device).unsqueeze(1)
        soft = (weight[:, chunk].T * scale).unsqueeze(1)  # [C, 1, d]
        input_ids = torch.full((len(chunk), 1), pcd.placeholder_id, dtype=torch.long, device=pcd.device)
        logits = pcd.decoder_logits(soft, input_ids, torch.ones_like(input_ids, dtype=torch.bool))[:, -1].float()
        top = torch.softmax(logits, dim=-1).topk(DECODER_TOP, dim=-1)
        for c, ids, ps in zip(chunk, top.indices.tolist(), top.values.tolist()):
            out[c] = list(zip(ids, ps))
    return out
