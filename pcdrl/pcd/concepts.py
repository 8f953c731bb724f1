"""From an item's read positions to concepts: pooled encoder logits, greedy top-k, and labels.

The concept-set policy and the `pretrained` evaluation row both start here: the encoder's
pre-activations averaged over the read positions give one logit per concept.
"""
from __future__ import annotations

import torch

from pcdrl.pcd.activations import read_residual


@torch.no_grad()
def read_item_activations(pcd, input_ids: list[list[int]], read_positions: list[list[int]],
                          batch_size: int = 16) -> list[torch.Tensor]:
    """S's residual at each item's read positions -> one [P_i, d] tensor per item.

    Rows are right-padded: with causal attention, padding after a position never changes it,
    so no attention mask is needed and every read matches an unpadded run.
    """
    pad = pcd.placeholder_id
    out: list[torch.Tensor] = []
    for start in range(0, len(input_ids), batch_size):
        rows = input_ids[start : start + batch_size]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        hidden = read_residual(pcd.decoder, ids.to(pcd.device), pcd.config.read_layer)
        for i, positions in enumerate(read_positions[start : start + batch_size]):
            out.append(hidden[i, positions].cpu())
    return out


def pooled_inputs(encoder, activations: list[torch.Tensor]) -> torch.Tensor:
    """Mean normalised activation over each item's read positions -> [N, d].

    Pre-activations are linear in the activation, so ``encoder.W_enc(pooled)`` equals the mean of the
    per-position encoder logits: one pooled vector per item is all a concept-set policy needs.
    """
    return torch.stack([encoder.normalize(a.to(encoder.W_enc.weight.device)).mean(0) for a in activations])


def labelled_concepts(concepts_json: dict) -> dict[int, str]:
    """concept id -> label, from a checkpoint's concepts.json."""
    return {int(c["id"]): c["label"] for c in concepts_json.get("concepts", []) if c.get("label")}


def greedy_concepts(logits: torch.Tensor, k: int, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """The k highest-logit concepts per row [N, k], restricted to ``allowed`` (a [m] bool mask) if given."""
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    return logits.topk(k, dim=-1).indices
