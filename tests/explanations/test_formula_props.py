"""Properties of formulas as data (hypothesis).

What round-trips: every formula tree (AND/OR with two or more children, any nesting, repeats and double negations
included) prints and parses back to the same tree, in both printed forms:
    parse(to_id_text(f)) == f    and    parse(to_text(f, labels), labels) == f   (labels distinct).
Canonical forms therefore round-trip too, and canonical(parse(text)) is a stable key for a formula's text.
"""
from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from pcdrl.explanations import (And, Literal, Not, Or, canonical, concepts, depth, evaluate, parse, size, to_id_text,
                                to_text)

N_CONCEPTS = 8  # few enough to enumerate every assignment (2**8), many enough for distinct sub-formulas
# Labels chosen to stress the printer: quotes, backslashes, keywords, operators and parentheses inside labels.
LABELS = {0: "Python", 1: "LORD", 2: "unto", 3: "don't", 4: "a \\ b", 5: "AND", 6: "x) OR (y", 7: 'the "Lord"'}

literals = st.builds(Literal, st.integers(0, N_CONCEPTS - 1))
formulas = st.recursive(
    literals,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(And, st.lists(inner, min_size=2, max_size=4).map(tuple)),
        st.builds(Or, st.lists(inner, min_size=2, max_size=4).map(tuple)),
    ),
    max_leaves=12,
)
PROPS = settings(max_examples=300, deadline=None)


def assignments(f):
    used = sorted(concepts(f))
    assert len(used) <= N_CONCEPTS
    for bits in itertools.product((False, True), repeat=len(used)):
        yield {c for c, bit in zip(used, bits) if bit}


@PROPS
@given(formulas)
def test_id_form_round_trips(f):
    assert parse(to_id_text(f)) == f


@PROPS
@given(formulas)
def test_label_form_round_trips(f):
    text = to_text(f, LABELS)
    assert parse(text, LABELS) == f
    assert parse(to_text(canonical(f), LABELS), LABELS) == canonical(f)


@PROPS
@given(formulas)
def test_canonical_preserves_truth_under_every_assignment(f):
    g = canonical(f)
    for true in assignments(f):
        assert evaluate(g, true) == evaluate(f, true), (to_id_text(f), to_id_text(g), sorted(true))


@PROPS
@given(formulas)
def test_canonical_is_idempotent_and_shrinks(f):
    g = canonical(f)
    assert canonical(g) == g
    assert size(g) <= size(f) and depth(g) <= depth(f)
    assert concepts(g) == concepts(f)  # only exact duplicates are dropped, so no concept disappears


@PROPS
@given(formulas)
def test_canonical_has_no_nesting_of_the_same_operator_and_no_double_negation(f):
    def check(node, parent):
        if isinstance(node, Not):
            assert not isinstance(node.child, Not)
            check(node.child, node)
        elif isinstance(node, (And, Or)):
            assert type(node) is not type(parent)
            assert len(set(node.children)) == len(node.children)
            for child in node.children:
                check(child, node)

    check(canonical(f), None)


@PROPS
@given(formulas, st.randoms(use_true_random=False))
def test_canonical_ignores_the_order_of_children(f, rnd):
    def shuffled(node):
        if isinstance(node, Not):
            return Not(shuffled(node.child))
        if isinstance(node, (And, Or)):
            children = [shuffled(c) for c in node.children]
            rnd.shuffle(children)
            return type(node)(tuple(children))
        return node

    assert canonical(shuffled(f)) == canonical(f)


@PROPS
@given(formulas)
def test_size_and_depth_bounds(f):
    assert 1 <= len(concepts(f)) <= size(f)
    assert (depth(f) == 0) == isinstance(f, Literal)
    # In canonical form every AND/OR on a path splits (>= 2 children) and at most one NOT sits above each, so the
    # depth is at most 2 * size - 1.
    g = canonical(f)
    assert depth(g) <= 2 * size(g) - 1


def test_examples_of_size_depth_and_canonical():
    f = parse("c3 AND (c1 AND NOT NOT c2) AND c1")
    assert (size(f), depth(f)) == (4, 4)
    assert to_id_text(canonical(f)) == "c1 AND c2 AND c3"
    g = parse("NOT c2 OR c1 AND c0 OR c2")
    assert to_id_text(canonical(g)) == "c2 OR NOT c2 OR c0 AND c1"  # a literal, then its negation, then ANDs
    assert to_text(parse("c0 AND NOT (c1 OR c2)"), LABELS) == "'Python' AND NOT ('LORD' OR 'unto')"
