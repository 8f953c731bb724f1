"""The PCD decoder: S plus a LoRA adapter, reading encoded vectors as soft tokens at layer 0.

A decoder input is ordinary token ids in which some positions are placeholders. Their
embeddings are replaced by the encoder's vectors (``inputs_embeds``), so gradients flow
from the decoder's loss back into the encoder through those positions.
"""
from __future__ import annotations

import torch
from torch import nn

IGNORE_INDEX = -100


def add_lora(model: nn.Module, rank: int, alpha: int, dropout: float, targets: list[str]):
    """Wrap S in a fresh peft LoRA adapter (the only trainable decoder weights)."""
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ValueError(
            f"pcd.lora_targets {missing} name no module of {type(model).__name__}; "
            f"linear layers it has include: {sorted(n for n in present if n.endswith('proj'))[:12]}"
        )
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
    return get_peft_model(model, config)


def embed_with_soft_tokens(
    decoder: nn.Module, input_ids: torch.Tensor, soft_tokens: torch.Tensor, placeholder_mask: torch.Tensor
) -> torch.Tensor:
    """Token embeddings of ``input_ids`` [B, T] with placeholder positions replaced by ``soft_tokens``.

    ``placeholder_mask`` [B, T] is True at exactly ``soft_tokens.shape[1]`` positions per row.
    """
    embeddings = decoder.get_input_embeddings()(input_ids)
    n_soft = soft_tokens.shape[1]
    counts = placeholder_mask.sum(1)
    if not bool((counts == n_soft).all()):
        raise ValueError(f"each row needs {n_soft} placeholder positions, got {counts.tolist()}")
    # masked_scatter fills placeholder positions in row-major order, i.e. soft token j of row b
    # lands on row b's j-th placeholder.
    mask = placeholder_mask.unsqueeze(-1).expand_as(embeddings)
    return embeddings.masked_scatter(mask, soft_tokens.to(embeddings.dtype))


def soft_prompt_batch(
    suffix_ids: torch.Tensor, n_soft: int, placeholder_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Layout ``[soft × n_soft] suffix`` with next-token labels on the suffix only.

    Returns (input_ids, placeholder_mask, labels), each [B, n_soft + S].
    """
    batch, _ = suffix_ids.shape
    placeholders = torch.full((batch, n_soft), placeholder_id, dtype=suffix_ids.dtype, device=suffix_ids.device)
    input_ids = torch.cat([placeholders, suffix_ids], dim=1)
    placeholder_mask = torch.zeros_like(input_ids, dtype=torch.bool)
    placeholder_mask[:, :n_soft] = True
    labels = input_ids.clone()
    labels[:, :n_soft] = IGNORE_INDEX  # the model shifts labels: the last soft token predicts suffix[0]
    return input_ids, placeholder_mask, labels


def per_row_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy per row over labelled positions -> [B]."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    token_loss = nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(shift_labels.shape)
    counted = (shift_labels != IGNORE_INDEX).float()
    return (token_loss * counted).sum(1) / counted.sum(1).clamp_min(1)
