"""Is a formula true on an item? Pure functions of the PCD encoder's per-position top-k.

Definition: a literal is true on an item when its concept is in the encoder's top-k at ANY of the item's read
positions, and NOT, AND and OR mean what they always do. The top-k at each read position is exactly what the
encoder passes through its bottleneck to the decoder, so the claim can be checked, position by position, against
the same activations. (Activity in the top-k of the pooled logits, which the concept-set policy ranks by, is weaker
evidence: pooling averages positions, so a concept can enter the pooled top-k while no position ever selected it,
and a concept that one position selected strongly can be averaged out of it. docs/formulas.md says more.)

An item's activity comes in one of two forms, told apart by dtype:
- a bool matrix [P, n_concepts]: True where a concept is in the top-k at a read position;
- integer top-k indices [P, k], as `ConceptEncoder(...).top_indices` returns them for the item's P read positions
  (then `n_concepts` is needed wherever a vector over all concepts is built).
Positions are rows of that tensor (0..P-1), i.e. indices into the item's read positions.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from pcdrl.explanations.formula import NODES, And, Formula, FormulaError, Literal, Not, evaluate, id_text


@dataclass(frozen=True)
class Closest:
    """Where a concept came nearest to the top-k on an item: its best rank over the item's read positions."""

    position: int
    """That read position (a row, or a token position when read positions were given); ties go to the higher
    pre-activation, then to the earlier position."""
    rank: int
    """1 + the number of concepts with a strictly higher pre-activation there (1 is the top). A concept in the
    top-k has rank <= k; one with rank > k at every position is in it nowhere, which is what a NOT claims."""
    value: float
    """Its pre-activation there."""


@dataclass(frozen=True)
class LiteralEvidence:
    concept: int
    """The concept id."""
    fired: bool
    """Whether the concept is in the top-k at some read position: the literal's truth (its negation's opposite)."""
    positions: tuple[int, ...]
    """The read positions (rows, or token positions when `evidence` was given them) where it is in the top-k."""
    values: tuple[float, ...] | None
    """The encoder's pre-activation at each of those positions, when `evidence` was given values."""
    ranks: tuple[int, ...] | None = None
    """Its rank (see `Closest.rank`) at each of those positions; only from `evidence_from_pre_acts`."""
    closest: Closest | None = None
    """Its best rank over all read positions; only from `evidence_from_pre_acts`. For a concept that did not fire
    it says how far it stayed from the top-k, so a NOT can be checked against a number, not only an absence."""


@dataclass(frozen=True)
class Evidence:
    true: bool
    """Whether the whole formula is true on the item."""
    n_positions: int
    """How many read positions the item has (a literal that did not fire is absent at all of them)."""
    literals: tuple[LiteralEvidence, ...]
    """One entry per distinct concept, in the order the formula first names them."""
    k: int | None = None
    """The encoder's top-k, when known (`evidence_from_pre_acts`): a rank <= k is in the top-k."""


def fired(active: torch.Tensor, n_concepts: int | None = None) -> torch.Tensor:
    """Which concepts are in the top-k at any read position of one item: bool [n_concepts]."""
    _check_active(active, n_concepts)
    if active.dtype == torch.bool:
        return active.any(0)
    if n_concepts is None:
        raise FormulaError("top-k indices need n_concepts (the encoder's number of concepts) to build a vector")
    out = torch.zeros(n_concepts, dtype=torch.bool, device=active.device)
    out[active.reshape(-1)] = True
    return out


def fired_batch(items: Sequence[torch.Tensor], n_concepts: int) -> torch.Tensor:
    """`fired` for each of N items (each with its own number of read positions): bool [N, n_concepts]."""
    if not items:
        return torch.zeros(0, n_concepts, dtype=torch.bool)
    return torch.stack([fired(a, n_concepts) for a in items])


def holds(f: Formula, fired_: torch.Tensor) -> torch.Tensor:
    """The formula's truth for every row of ``fired_`` (bool [..., n_concepts]): bool [...]."""
    n = fired_.shape[-1]
    if fired_.dtype != torch.bool:
        raise FormulaError(f"holds needs a bool tensor of fired concepts, got {fired_.dtype}; see fired()")
    if isinstance(f, Literal):
        if f.concept >= n:
            raise FormulaError(f"concept {id_text(f.concept)} is outside the encoder's {n} concepts")
        return fired_[..., f.concept]
    if isinstance(f, Not):
        return ~holds(f.child, fired_)
    parts = torch.stack([holds(c, fired_) for c in f.children])
    return parts.all(0) if isinstance(f, And) else parts.any(0)


def holds_each(formulas: Sequence[Formula], fired_: torch.Tensor) -> torch.Tensor:
    """Formula i's truth on row i of ``fired_`` (bool [N, n_concepts]): bool [N]."""
    if len(formulas) != fired_.shape[0]:
        raise FormulaError(f"{len(formulas)} formulas for {fired_.shape[0]} items; give one formula per item")
    if not formulas:
        return torch.zeros(0, dtype=torch.bool)
    return torch.stack([holds(f, row) for f, row in zip(formulas, fired_)])


def is_true(f: Formula, active: torch.Tensor, n_concepts: int | None = None) -> bool:
    """Whether the formula is true on one item (``active``: bool [P, n_concepts] or top-k indices [P, k]).

    With top-k indices, ``n_concepts`` is optional; given, a concept id beyond it is refused.
    """
    _check_active(active, n_concepts)
    named = _concepts_named(f)
    limit = active.shape[1] if active.dtype == torch.bool else n_concepts
    if limit is not None and max(named) >= limit:
        raise FormulaError(f"concept {id_text(max(named))} is outside the encoder's {limit} concepts")
    return evaluate(f, {c for c in named if bool(_fires_at(active, c).any())})


def is_true_batch(formulas: Formula | Sequence[Formula], items: Sequence[torch.Tensor],
                  n_concepts: int) -> torch.Tensor:
    """Truth on each of N items: one formula for all of them, or one formula per item. Bool [N]."""
    table = fired_batch(items, n_concepts)
    if isinstance(formulas, NODES):
        return holds(formulas, table)
    return holds_each(list(formulas), table)


def literal_evidence(active: torch.Tensor, concept: int) -> list[int]:
    """The read positions (rows of ``active``) where ``concept`` is in the top-k; empty when it never is."""
    return _fires_at(active, concept).nonzero().flatten().tolist()


def evidence(f: Formula, active: torch.Tensor, values: torch.Tensor | None = None,
             read_positions: Sequence[int] | None = None, n_concepts: int | None = None) -> Evidence:
    """What a person needs to check the claim: the formula's truth, and for each concept it names, where it fired.

    ``values`` has the shape of ``active`` (pre-activations [P, n_concepts] beside a bool matrix, or the top-k
    values [P, k] beside top-k indices) and adds the activation at each firing position. ``read_positions`` (the
    item's P token positions) turns rows into token positions.
    """
    _check_active(active, n_concepts)
    if values is not None and values.shape != active.shape:
        raise FormulaError(f"values must have the shape of active {tuple(active.shape)}, got {tuple(values.shape)}")
    if read_positions is not None and len(read_positions) != active.shape[0]:
        raise FormulaError(f"{len(read_positions)} read positions for {active.shape[0]} rows of activity")
    literals = []
    for concept in _concepts_named(f):
        rows = literal_evidence(active, concept)
        shown = tuple(int(read_positions[r]) for r in rows) if read_positions is not None else tuple(rows)
        literals.append(LiteralEvidence(concept, bool(rows), shown, _values_at(active, values, concept, rows)))
    return Evidence(is_true(f, active, n_concepts), active.shape[0], tuple(literals))


def evidence_from_pre_acts(f: Formula, pre_acts: torch.Tensor, k: int,
                           read_positions: Sequence[int] | None = None) -> Evidence:
    """`evidence` from the encoder's pre-activations [P, n_concepts] at the item's read positions
    (`ConceptEncoder.pre_activations`), adding each concept's rank where it fired and its `closest` approach.

    The top-k is taken as `ConceptEncoder.forward` takes it (``pre_acts.topk(k)``), so the positions listed are
    exactly those where the encoder selected the concept, and the truth is the one training and eval used.
    """
    if not isinstance(pre_acts, torch.Tensor) or pre_acts.dim() != 2 or not pre_acts.dtype.is_floating_point:
        shape = tuple(pre_acts.shape) if isinstance(pre_acts, torch.Tensor) else type(pre_acts).__name__
        raise FormulaError(f"pre-activations must be a float tensor [read positions, n_concepts], got {shape}")
    n = pre_acts.shape[1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise FormulaError(f"k (the encoder's top-k) must be an integer in [1, {n}], got {k!r}")
    top_values, top_indices = pre_acts.topk(k, dim=-1)
    base = evidence(f, top_indices, top_values, read_positions, n)
    literals = []
    for lit in base.literals:
        ranks = _ranks(pre_acts, lit.concept)
        rows = literal_evidence(top_indices, lit.concept)
        literals.append(replace(lit, ranks=tuple(int(ranks[r]) for r in rows),
                                closest=_closest(ranks, pre_acts[:, lit.concept], read_positions)))
    return replace(base, literals=tuple(literals), k=k)


def signed_literals(f: Formula) -> list[tuple[int, bool]]:
    """The formula's distinct literals as (concept, negated), in the order it first names them. A literal is negated
    when an odd number of NOTs lies above it: in `'a' AND NOT ('b' OR 'c')` both b and c are claimed absent."""
    def walk(node: Formula, negated: bool):
        if isinstance(node, Literal):
            yield node.concept, negated
        elif isinstance(node, Not):
            yield from walk(node.child, not negated)
        else:
            for child in node.children:
                yield from walk(child, negated)

    return list(dict.fromkeys(walk(f, False)))


# --- helpers ---------------------------------------------------------------------------------------------------

def _check_active(active: torch.Tensor, n_concepts: int | None) -> None:
    if not isinstance(active, torch.Tensor) or active.dim() != 2:
        shape = tuple(active.shape) if isinstance(active, torch.Tensor) else type(active).__name__
        raise FormulaError(f"activity must be a 2-D tensor [read positions, ...], got {shape}")
    if active.dtype == torch.bool:
        if n_concepts is not None and active.shape[1] != n_concepts:
            raise FormulaError(f"a bool activity matrix has {active.shape[1]} columns, not n_concepts={n_concepts}")
        return
    if active.dtype.is_floating_point or active.dtype.is_complex:
        raise FormulaError(f"activity is a bool matrix or integer top-k indices, got {active.dtype}")
    if n_concepts is not None and active.numel() and (int(active.min()) < 0 or int(active.max()) >= n_concepts):
        raise FormulaError(f"top-k indices must lie in [0, {n_concepts}), got {int(active.min())}..{int(active.max())}")


def _fires_at(active: torch.Tensor, concept: int) -> torch.Tensor:
    """bool [P]: where the concept is in the top-k."""
    if active.dtype == torch.bool:
        if concept >= active.shape[1]:
            raise FormulaError(f"concept {id_text(concept)} is outside the encoder's {active.shape[1]} concepts")
        return active[:, concept]
    return (active == concept).any(-1)


def _values_at(active: torch.Tensor, values: torch.Tensor | None, concept: int, rows: list[int]):
    if values is None:
        return None
    if active.dtype == torch.bool:
        return tuple(float(values[r, concept]) for r in rows)
    return tuple(float(values[r][active[r] == concept][0]) for r in rows)


def _ranks(pre_acts: torch.Tensor, concept: int) -> torch.Tensor:
    """long [P]: the concept's rank at each position (1 + how many concepts score strictly higher)."""
    return 1 + (pre_acts > pre_acts[:, concept : concept + 1]).sum(-1)


def _closest(ranks: torch.Tensor, values: torch.Tensor, read_positions: Sequence[int] | None) -> Closest | None:
    if ranks.numel() == 0:
        return None
    row = min(range(ranks.numel()), key=lambda r: (int(ranks[r]), -float(values[r]), r))
    position = int(read_positions[row]) if read_positions is not None else row
    return Closest(position, int(ranks[row]), float(values[row]))


def _concepts_named(f: Formula) -> list[int]:
    """Distinct concept ids, in the order the formula first names them (left to right)."""
    if isinstance(f, Literal):
        return [f.concept]
    children = [f.child] if isinstance(f, Not) else list(f.children)
    return list(dict.fromkeys(c for child in children for c in _concepts_named(child)))
