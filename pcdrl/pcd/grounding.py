"""The decoder's loss on S's own output given only the chosen concepts: how well they alone let the PCD predict it.

It runs S (with the decoder's adapter), so it lives with the PCD; the trainer computes it per sampled row and
hands it to the `grounding` reward term (`pcdrl.rewards.terms`), which stays a pure function of the batch.
"""
from __future__ import annotations

from collections import defaultdict

import torch


@torch.no_grad()
def grounding_losses(pcd, activations: list[torch.Tensor], item_rows: torch.Tensor, chosen: torch.Tensor,
                     output_ids: list[list[int]], batch_size: int = 16) -> torch.Tensor:
    """[N] per sampled row: the decoder's mean next-token loss on its item's output tokens when the soft tokens
    are built only from the chosen concepts.

    Why: an explanation is grounded when the concepts it names carry the information S used. The PCD decoder
    was trained to predict S's continuation from k concepts per position; if we hand it only the chosen concepts
    (at their real pre-activation values, at every read position of the item) and it still predicts what S
    actually wrote, the choice kept what mattered. The sparse code mimics `ConceptEncoder.forward` exactly,
    with the chosen ids in place of its per-position top-k (values are kept as they are, negative or not), so
    choosing a position's own top-k reproduces `PCD.suffix_loss`.

    ``activations[i]`` is item i's residual at its read positions [P_i, d]; ``item_rows[n]`` is row n's item;
    ``chosen`` [N, K] are concept ids; ``output_ids[i]`` are S's output tokens for item i. Call with the PCD in
    eval mode: LoRA dropout would make the reward noisy.
    """
    encoder = pcd.encoder
    item_rows = item_rows.tolist()
    if chosen.shape[0] != len(item_rows):
        raise ValueError(f"chosen has {chosen.shape[0]} rows but item_rows has {len(item_rows)}")
    for n, item in enumerate(item_rows):
        if not output_ids[item]:
            raise ValueError(f"item {item} has an empty output: the grounding loss needs at least one token")
        bad = [c for c in chosen[n].tolist() if not 0 <= c < encoder.n_concepts]
        if bad:
            raise ValueError(f"row {n} (item {item}) chose concept ids {bad} outside 0..{encoder.n_concepts - 1}")

    # Pre-activations once per item, not once per sampled row (an item has many samples).
    pre_acts = {i: encoder.pre_activations(activations[i].to(pcd.device)) for i in set(item_rows)}
    # Soft-token counts must match within a decoder batch (padding them would shift positions), so group rows
    # by P; output lengths may differ and are right-padded (`soft_suffix_loss` ignores the padding).
    by_positions: dict[int, list[int]] = defaultdict(list)
    for n, item in enumerate(item_rows):
        by_positions[activations[item].shape[0]].append(n)

    losses = torch.empty(len(item_rows))
    for rows in by_positions.values():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            pre = torch.stack([pre_acts[item_rows[n]] for n in batch])  # [B, P, m]
            ids = chosen[batch].to(pcd.device).unsqueeze(1).expand(-1, pre.shape[1], -1)  # [B, P, K]
            sparse = torch.zeros_like(pre).scatter(-1, ids, pre.gather(-1, ids))
            outputs = [output_ids[item_rows[n]] for n in batch]
            width = max(len(o) for o in outputs)
            suffix = torch.full((len(batch), width), pcd.placeholder_id, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.bool)
            for b, o in enumerate(outputs):
                suffix[b, : len(o)] = torch.tensor(o)
                mask[b, : len(o)] = True
            losses[batch] = pcd.soft_suffix_loss(encoder.W_emb(sparse), suffix, mask).float().cpu()
    return losses
