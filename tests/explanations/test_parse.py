"""Parsing by example: precedence, both literal forms, and the errors a person sees (position, label by name)."""
from __future__ import annotations

import pytest

from pcdrl.explanations import And, FormulaError, Literal, Not, Or, parse, to_id_text, to_text

LABELS = {1: "Python", 2: "LORD", 3: "unto", 4: "numbers", 5: "numbers", 6: "don't"}
a, b, c = Literal(1), Literal(2), Literal(3)


def test_precedence_not_over_and_over_or():
    assert parse("c1 OR c2 AND NOT c3") == Or((a, And((b, Not(c)))))
    assert parse("NOT c1 AND c2") == And((Not(a), b))
    assert parse("NOT (c1 AND c2)") == Not(And((a, b)))
    assert parse("(c1 OR c2) AND c3") == And((Or((a, b)), c))


def test_chains_are_flat_and_parentheses_keep_nesting():
    assert parse("c1 AND c2 AND c3") == And((a, b, c))
    assert parse("c1 AND (c2 AND c3)") == And((a, And((b, c))))
    assert parse("((c1))") == a


def test_labels_ids_and_mixed_forms_agree():
    expected = And((a, Not(Or((b, c)))))
    assert parse("'Python' AND NOT ('LORD' OR 'unto')", LABELS) == expected
    assert parse("c1 and not (c2 or \"unto\")", LABELS) == expected  # keywords in any case, double quotes too
    assert parse(r"'don\'t'", LABELS) == Literal(6)


def test_printing_is_minimal_and_quoted():
    f = Or((And((a, Not(Or((b, c))))), Not(a)))
    assert to_text(f, LABELS) == "'Python' AND NOT ('LORD' OR 'unto') OR NOT 'Python'"
    assert to_id_text(f) == "c1 AND NOT (c2 OR c3) OR NOT c1"
    assert to_text(Literal(6), LABELS) == '"don\'t"'


@pytest.mark.parametrize("text, message", [
    ("c1 AND AND c2", "formula 'c1 AND AND c2': expected a literal, NOT or '(' at position 7"),
    ("c1 c2", "expected AND, OR or the end of the formula at position 3"),
    ("(c1 AND c2", "expected ')', AND or OR at position 10 (end of formula), to close the '(' at position 0"),
    ("c1)", "unmatched ')' at position 2"),
    ("c1 AND", "expected a literal, NOT or '(' at position 6 (end of formula)"),
    ("c1 & c2", "unexpected character '&' at position 3"),
    ("c1 AND python", "unknown word 'python' at position 7"),
    ("'Python", "the label opened at position 0 is never closed"),
    ("   ", "empty formula"),
])
def test_syntax_errors_name_the_position(text, message):
    with pytest.raises(FormulaError) as err:
        parse(text)
    assert message in str(err.value)


def test_unknown_label_is_refused_by_name_with_a_suggestion():
    with pytest.raises(FormulaError, match=r"unknown label 'Pythn' at position 7\. Did you mean 'Python'\?"):
        parse("c2 AND 'Pythn'", LABELS)


def test_ambiguous_label_names_the_concepts_that_share_it():
    with pytest.raises(FormulaError, match=r"label 'numbers' at position 0 is ambiguous: concepts c4, c5 share it"):
        parse("'numbers' OR c1", LABELS)


def test_a_label_shared_by_many_concepts_lists_eight_and_counts_the_rest():
    """Real auto-interp labels repeat (~170 concepts share one): the error stays one readable line."""
    many = {c: "words" for c in range(10, 180)}
    with pytest.raises(FormulaError) as err:
        parse("'words'", many)
    message = str(err.value)
    assert "concepts c10, c11, c12, c13, c14, c15, c16, c17 and 162 more share it" in message
    assert "c18" not in message and len(message) < 200


def test_unlabelled_or_unknown_concept_is_refused_by_id_when_labels_are_given():
    with pytest.raises(FormulaError, match=r"concept c9 at position 6 is unknown or has no label"):
        parse("c1 OR c9", LABELS)
    assert parse("c1 OR c9") == Or((a, Literal(9)))  # without labels, any id is a concept


def test_a_label_needs_the_labels():
    with pytest.raises(FormulaError, match=r"label 'Python' at position 0 cannot be resolved without the concept"):
        parse("'Python'")


def test_printing_refuses_an_unlabelled_concept_by_id():
    with pytest.raises(FormulaError, match=r"concept c9 has no label"):
        to_text(And((a, Literal(9))), LABELS)


def test_hostile_nesting_is_a_formula_error_not_a_recursion_error():
    with pytest.raises(FormulaError, match="nested deeper than"):
        parse("(" * 5000 + "c1" + ")" * 5000)
    with pytest.raises(FormulaError, match="nested deeper than"):
        parse("NOT " * 5000 + "c1")


@pytest.mark.parametrize("build, message", [
    (lambda: And((a,)), "AND needs at least two children"),
    (lambda: Or(()), "OR needs at least two children"),
    (lambda: Literal(-1), "concept id"),
    (lambda: Literal(True), "concept id"),
    (lambda: Not("c1"), "NOT takes formulas"),
])
def test_malformed_trees_are_refused_at_construction(build, message):
    with pytest.raises(FormulaError, match=message):
        build()
