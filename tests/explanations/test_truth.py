"""The truth check: a literal is true when its concept is in the encoder's top-k at any read position."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pcdrl.explanations import (And, FormulaError, Literal, Not, Or, canonical, evidence, fired, fired_batch, holds,
                                is_true, is_true_batch, literal_evidence, parse)
from pcdrl.explanations.truth import Closest, evidence_from_pre_acts, signed_literals
from pcdrl.pcd.encoder import ConceptEncoder

N = 6
# One item, three read positions, top-2 per position: concept 0 at positions 0 and 2, concept 1 at 0, concept 4 at 1
# and 2, concept 5 at 1. Concepts 2 and 3 never fire.
INDICES = torch.tensor([[0, 1], [4, 5], [4, 0]])
VALUES = torch.tensor([[3.0, 2.5], [4.0, 1.0], [2.0, 1.5]])


def as_matrix(indices: torch.Tensor, n: int = N) -> torch.Tensor:
    return torch.zeros(indices.shape[0], n, dtype=torch.bool).scatter(1, indices, True)


@pytest.mark.parametrize("text, true", [
    ("c0", True), ("c2", False),                                # a literal: fired at some position, or never
    ("NOT c2", True), ("NOT c0", False),                        # NOT: never fired
    ("c0 AND c5", True), ("c0 AND c3", False),                  # AND: both fired (at different positions is enough)
    ("c2 OR c3", False), ("c3 OR c1", True),                    # OR: at least one fired
    ("c0 AND NOT (c2 OR c3)", True), ("NOT (c0 AND c1) OR c2", False),
])
def test_each_operator_on_a_hand_built_item(text, true):
    f = parse(text)
    assert is_true(f, INDICES, N) is true
    assert is_true(f, as_matrix(INDICES)) is true
    assert is_true(f, INDICES) is true  # n_concepts is optional with indices
    assert bool(holds(f, fired(INDICES, N))) is true


def test_literal_evidence_lists_the_firing_positions():
    assert literal_evidence(INDICES, 0) == [0, 2]
    assert literal_evidence(as_matrix(INDICES), 4) == [1, 2]
    assert literal_evidence(INDICES, 3) == []


def test_evidence_gives_positions_and_values_per_concept_in_formula_order():
    e = evidence(parse("c4 AND NOT (c3 OR c0)"), INDICES, VALUES, read_positions=[17, 18, 19], n_concepts=N)
    assert e.true is False and e.n_positions == 3
    assert [(x.concept, x.fired, x.positions, x.values) for x in e.literals] == [
        (4, True, (18, 19), (4.0, 2.0)), (3, False, (), ()), (0, True, (17, 19), (3.0, 1.5))]
    # The same from a bool matrix beside full pre-activations.
    pre = torch.zeros(3, N).scatter(1, INDICES, VALUES)
    again = evidence(parse("c4 AND NOT (c3 OR c0)"), as_matrix(INDICES), pre, read_positions=[17, 18, 19])
    assert again == e


def _pre_acts() -> torch.Tensor:
    """Seven read positions over six concepts, k = 2. Everywhere c0 (5.0) and c4 (4.0) lead, c1 is third (3.0) and
    c3 fourth (1.0); at rows 2 and 5 c3 jumps to 6.0 and enters the top-2. c1 never enters it; at row 4 it is 3.9,
    still third. c2 (0.0) and c5 (-1.0) never come close."""
    pre = torch.tensor([[5.0, 3.0, 0.0, 1.0, 4.0, -1.0]]).repeat(7, 1)
    pre[[2, 5], 3] = 6.0
    pre[4, 1] = 3.9
    return pre


def test_evidence_from_pre_acts_lists_exactly_the_top_k_positions_with_ranks():
    e = evidence_from_pre_acts(parse("c3 AND NOT c1"), _pre_acts(), 2, read_positions=range(10, 17))
    assert e.true is True and e.k == 2 and e.n_positions == 7
    c3, c1 = e.literals
    assert (c3.concept, c3.fired, c3.positions, c3.values, c3.ranks) == (3, True, (12, 15), (6.0, 6.0), (1, 1))
    # A NOT lists no position, and its closest approach says how far from the top-2 it stayed: third at best, at
    # row 4 (rank ties go to the higher pre-activation: 3.9 beats the 3.0 of rows 0, 1, 3, 6).
    assert (c1.fired, c1.positions, c1.ranks) == (False, (), ())
    assert c1.closest == Closest(position=14, rank=3, value=pytest.approx(3.9))
    # Without read positions, positions are rows; the plain evidence from the same top-k agrees.
    rows = evidence_from_pre_acts(parse("c3"), _pre_acts(), 2)
    assert rows.literals[0].positions == (2, 5) and rows.literals[0].closest == Closest(2, 1, 6.0)
    values, indices = _pre_acts().topk(2, dim=-1)
    plain = evidence(parse("c3 AND NOT c1"), indices, values, range(10, 17), 6)
    assert [(x.concept, x.fired, x.positions, x.values) for x in plain.literals] == [
        (x.concept, x.fired, x.positions, x.values) for x in e.literals]


def test_a_false_literal_shows_up_false_with_its_evidence():
    e = evidence_from_pre_acts(parse("c3 AND c2 AND NOT c0"), _pre_acts(), 2)
    assert e.true is False
    c3, c2, c0 = e.literals
    assert not c2.fired and c2.closest.rank == 5  # behind c0, c4, c1, c3 everywhere, and c3 at 6.0 changes nothing
    assert c0.fired and c0.positions == tuple(range(7))  # NOT c0 is false: here is where c0 was selected
    assert c0.ranks == (1, 1, 2, 1, 1, 2, 1)


def test_signed_literals_carry_the_parity_of_the_nots_above_them():
    f = parse("c0 AND NOT (c1 OR NOT c2) AND NOT c0")
    assert signed_literals(f) == [(0, False), (1, True), (2, False), (0, True)]
    assert signed_literals(parse("c4")) == [(4, False)]


def test_batched_and_single_agree_on_ragged_items():
    gen = torch.Generator().manual_seed(0)
    items = [torch.randint(0, N, (p, 2), generator=gen) for p in (1, 4, 2, 3)]
    f = parse("c1 AND NOT c2 OR c3")
    assert is_true_batch(f, items, N).tolist() == [is_true(f, a, N) for a in items]
    per_item = [parse(t) for t in ("c0", "NOT c1", "c2 OR c5", "c3 AND c4")]
    assert is_true_batch(per_item, items, N).tolist() == [is_true(g, a, N) for g, a in zip(per_item, items)]
    assert fired_batch(items, N).shape == (4, N)


def test_the_truth_is_per_position_top_k_not_the_pooled_top_k():
    # W_enc = identity, so activations are the pre-activations. With k = 1, position 0 selects concept 1 and
    # position 1 selects concept 2; concept 0 is second everywhere but first after pooling. The pooled top-1 would
    # claim concept 0, which never passed through the bottleneck: under this definition it is false.
    encoder = ConceptEncoder(d_model=3, n_concepts=3, k=1)
    with torch.no_grad():
        encoder.W_enc.weight.copy_(torch.eye(3))
    acts = torch.tensor([[2.0, 3.0, 0.0], [2.0, 0.0, 3.0]])
    top = encoder(acts).top_indices
    assert encoder.pre_activations(acts).mean(0).argmax().item() == 0
    assert not is_true(Literal(0), top, 3)
    assert is_true(parse("c1 AND c2 AND NOT c0"), top, 3)


def test_an_item_with_no_read_positions_has_nothing_fired():
    empty = torch.zeros(0, 2, dtype=torch.long)
    assert is_true(parse("NOT c1"), empty, N) and not is_true(parse("c1"), empty, N)


@pytest.mark.parametrize("call, message", [
    (lambda: is_true(parse("c9"), INDICES, N), "concept c9 is outside the encoder's 6 concepts"),
    (lambda: is_true(parse("c9"), as_matrix(INDICES)), "concept c9 is outside the encoder's 6 concepts"),
    (lambda: holds(parse("c9"), fired(INDICES, N)), "concept c9 is outside"),
    (lambda: is_true(parse("c1"), INDICES.float()), "bool matrix or integer top-k indices"),
    (lambda: is_true(parse("c1"), INDICES[0]), "2-D tensor"),
    (lambda: fired(INDICES), "need n_concepts"),
    (lambda: fired(INDICES, 4), r"must lie in \[0, 4\)"),
    (lambda: is_true_batch([parse("c1")], [INDICES, INDICES], N), "1 formulas for 2 items"),
    (lambda: evidence(parse("c1"), INDICES, VALUES[:, :1]), "values must have the shape of active"),
    (lambda: evidence_from_pre_acts(parse("c1"), INDICES, 1), "float tensor"),
    (lambda: evidence_from_pre_acts(parse("c1"), _pre_acts(), 0), r"k \(the encoder's top-k\) must be"),
    (lambda: evidence_from_pre_acts(parse("c1"), _pre_acts(), 7), r"in \[1, 6\]"),
    (lambda: evidence_from_pre_acts(parse("c9"), _pre_acts(), 2), "concept c9 is outside"),
])
def test_bad_inputs_are_formula_errors(call, message):
    with pytest.raises(FormulaError, match=message):
        call()


# --- property: the canonical form is true exactly where the formula is ---------------------------------------------

formulas = st.recursive(
    st.builds(Literal, st.integers(0, N - 1)),
    lambda inner: st.one_of(st.builds(Not, inner),
                            st.builds(And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
                            st.builds(Or, st.lists(inner, min_size=2, max_size=3).map(tuple))),
    max_leaves=10,
)
activity = st.integers(0, 4).flatmap(
    lambda p: st.lists(st.lists(st.booleans(), min_size=N, max_size=N), min_size=p, max_size=p)
).map(lambda rows: torch.tensor(rows, dtype=torch.bool).reshape(-1, N))


@settings(max_examples=300, deadline=None)
@given(formulas, st.lists(activity, min_size=1, max_size=4))
def test_canonical_is_true_exactly_where_the_formula_is(f, items):
    single = [is_true(f, a) for a in items]
    assert [is_true(canonical(f), a) for a in items] == single
    assert is_true_batch(f, items, N).tolist() == single
    assert is_true_batch(canonical(f), items, N).tolist() == single
