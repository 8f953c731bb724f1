"""Items as the PCD sees them: the PCD with its labels, and each item's activations from S, pooled.

`pcdrl train`, `pcdrl eval`, `pcdrl judge-eval` and the data build's option-overlap report all start here:

    PCD checkpoint ─► labels ─► allowed-concept mask
    items ─► built for this PCD's subject model and layer? ─► S's residual at the read positions ─► pooled

Written once so that every verb reads the same numbers and refuses the same mismatched data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pcdrl.pcd.concepts import greedy_concepts, labelled_concepts, pooled_inputs, read_item_activations


@dataclass
class LabelledPCD:
    pcd: object
    """The `pcdrl.pcd.model.PCD`, in eval mode: S (with the decoder's adapter) and the concept encoder."""
    path: str
    """Where it was loaded from; errors name it."""
    labels: dict[int, str]
    """concept id -> label, for the concepts `pcdrl label` labelled: the only ones an explanation may show."""
    allowed: torch.Tensor
    """[n_concepts] bool, True where a concept has a label: the policies' and the greedy row's mask."""


@dataclass
class EncodedItems:
    activations: list[torch.Tensor]
    """S's residual at each item's read positions, one [P_i, d] tensor per item, on the CPU."""
    pooled: torch.Tensor
    """[N, d] each item's mean normalised activation (on the encoder's device): all a concept-set policy reads."""


def load_labelled_pcd(path: str | Path) -> LabelledPCD:
    from pcdrl.pcd.model import PCD  # loads S: only when a verb needs it

    pcd = PCD.from_pretrained(path)
    pcd.eval()
    labels = labelled_concepts(pcd.concepts)
    allowed = torch.zeros(pcd.encoder.n_concepts, dtype=torch.bool)
    allowed[list(labels)] = True
    return LabelledPCD(pcd, str(path), labels, allowed)


def check_items_match(items: list[dict], pcd: LabelledPCD, data: str | Path | None = None) -> None:
    """Every item records the subject model and layer it was read from; a PCD that reads another model or
    layer would encode activations it was never trained on, and silently explain nothing."""
    model, layer = pcd.pcd.config.subject_model, pcd.pcd.config.read_layer
    for item in items:
        if item["model"] != model or item["layer"] != layer:
            source = f" of {data}" if data else ""
            raise ValueError(
                f"item {item['id']}{source} was built on {item['model']} layer {item['layer']}, but the PCD "
                f"{pcd.path} reads {model} layer {layer}; rebuild the data for this PCD (`pcdrl data build` with "
                f"subject_model={model} layer={layer}) or use the PCD the data was built for")


def encode_items(pcd: LabelledPCD, items: list[dict], data: str | Path | None = None) -> EncodedItems:
    """Check the items against the PCD, then read S once per item and pool over the read positions.
    ``data`` (the dataset's folder) only makes a mismatch error say where the items came from."""
    check_items_match(items, pcd, data)
    activations = read_item_activations(pcd.pcd, [it["input_ids"] for it in items],
                                        [it["read_positions"] for it in items])
    with torch.no_grad():
        pooled = pooled_inputs(pcd.pcd.encoder, activations)
    return EncodedItems(activations, pooled)


def pretrained_concepts(pcd: LabelledPCD, encoded: EncodedItems, k: int) -> list[list[int]]:
    """The pretrained encoder's k highest-logit labelled concepts per item, highest first."""
    with torch.no_grad():
        logits = pcd.pcd.encoder.W_enc(encoded.pooled).cpu()
    return greedy_concepts(logits, k, pcd.allowed).tolist()
