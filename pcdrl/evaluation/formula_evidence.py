"""The evidence under each formula of a formula eval's examples: per literal, where it holds, so a person can test it.

    example item ─► S's activations at its read positions (kept from formula_sets: S is not run again)
                 ─► the encoder's pre-activations, one linear map per item ─► its top-k per position
                 ─► per row (pretrained, rl per seed), per literal: true or false, and the positions that make it so

A positive literal lists the read positions where its concept is in the top-k (token position, the token there as
the subject model's tokenizer decodes it, the pre-activation and the rank). A negated one (under an odd number of
NOTs) lists the same positions, which for a true NOT are none; every literal also carries its `closest` approach
(best rank over the read positions), the number that backs a NOT. Written into examples.jsonl as `evidence` and
rendered by report.html (report_parts.evidence_block). The truth definition is pcdrl/explanations/truth.py.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from pcdrl.explanations import Formula, to_id_text, to_text
from pcdrl.explanations import Evidence, evidence_from_pre_acts, signed_literals


def _spot(position: int, tokens: Mapping[int, str], value: float, rank: int) -> dict:
    return {"position": position, "token": tokens.get(position, ""), "value": round(value, 4), "rank": rank}


def literal_lines(f: Formula, found: Evidence, labels: Mapping[int, str], tokens: Mapping[int, str]) -> list[dict]:
    """One JSON-ready line per distinct literal of ``f`` (`signed_literals`), from its `evidence_from_pre_acts`.
    ``tokens`` maps a token position to its text; positions in ``found`` are token positions."""
    by_concept = {x.concept: x for x in found.literals}
    lines = []
    for concept, negated in signed_literals(f):
        x = by_concept[concept]
        closest = x.closest and _spot(x.closest.position, tokens, x.closest.value, x.closest.rank)
        lines.append({
            "concept": concept, "label": labels.get(concept, ""), "negated": negated, "fired": x.fired,
            "true": x.fired != negated,
            "positions": [_spot(p, tokens, v, r) for p, v, r in zip(x.positions, x.values or (), x.ranks or ())],
            "closest": closest,
        })
    return lines


def formula_evidence(f: Formula, pre_acts: torch.Tensor, k: int, read_positions: Sequence[int],
                     tokens: Mapping[int, str], labels: Mapping[int, str]) -> dict:
    """The evidence for one formula on one item (pure): its truth, the encoder's k and number of read positions,
    and `literal_lines`. ``pre_acts`` [P, n_concepts] are the encoder's at the item's P ``read_positions``."""
    found = evidence_from_pre_acts(f, pre_acts, k, read_positions)
    return {"formula": to_id_text(f), "text": to_text(f, labels), "true": found.true, "k": k,
            "n_positions": found.n_positions, "literals": literal_lines(f, found, labels, tokens)}


def row_formulas(sets) -> dict[str, list[Formula]]:
    """The rows whose evidence examples show, named as examples.jsonl names them: pretrained, rl (seed 0), rl/1..."""
    return {"pretrained": sets.pretrained, **{("rl" if r == 0 else f"rl/{r}"): run for r, run in enumerate(sets.rl)}}


def example_evidence(sets, ids: Sequence[str]) -> dict[str, dict[str, dict]]:
    """item id -> row -> `formula_evidence`, for the example items of a `FormulaSets` (formula_rows.py).

    Reuses the activations `formula_sets` read (``sets.activations``): the cost is one encoder matmul per example
    item, on the encoder's device, and decoding its read-position tokens.
    """
    encoder, tokenizer = sets.pcd.encoder, sets.pcd.tokenizer
    index = {item["id"]: i for i, item in enumerate(sets.items)}
    rows = row_formulas(sets)
    out = {}
    for item_id in ids:
        i = index[item_id]
        item = sets.items[i]
        with torch.no_grad():  # on the encoder's device and dtype, as items_fired took the top-k: the same picks
            pre_acts = encoder.pre_activations(sets.activations[i].to(encoder.W_enc.weight.device))
        positions = [int(p) for p in item["read_positions"]]
        tokens = {p: tokenizer.decode([item["input_ids"][p]]) for p in positions}
        out[item_id] = {row: formula_evidence(formulas[i], pre_acts, encoder.k, positions, tokens, sets.labels)
                        for row, formulas in rows.items()}
    return out
