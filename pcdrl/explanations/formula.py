"""Propositional formulas over PCD concepts, as immutable trees, and the pure functions on them.

A formula is built from four node types: `Literal` (one concept, by id), `Not`, and the n-ary `And` and `Or`
(at least two children each). Everything here is a pure function of the tree: size, depth, the concepts used,
truth under an assignment, a canonical form, and the two printed forms (labels quoted, or concept ids).
The grammar and the parser are in `parse.py`; docs/formulas.md describes both.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union


class FormulaError(ValueError):
    """A formula that is malformed, does not parse, or names a concept it may not use."""


@dataclass(frozen=True)
class Literal:
    concept: int
    """The concept's id in the PCD encoder (a row of W_enc)."""

    def __post_init__(self) -> None:
        if isinstance(self.concept, bool) or not isinstance(self.concept, int) or self.concept < 0:
            raise FormulaError(f"a literal's concept must be a concept id (an integer >= 0), got {self.concept!r}")


@dataclass(frozen=True)
class Not:
    child: "Formula"
    """The negated formula."""

    def __post_init__(self) -> None:
        _check_node(self.child, "NOT")


@dataclass(frozen=True)
class And:
    children: tuple["Formula", ...]
    """Two or more conjuncts, in order (a list is stored as a tuple)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", _check_children(self.children, "AND"))


@dataclass(frozen=True)
class Or:
    children: tuple["Formula", ...]
    """Two or more disjuncts, in order (a list is stored as a tuple)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", _check_children(self.children, "OR"))


Formula = Union[Literal, Not, And, Or]
NODES = (Literal, Not, And, Or)
OPERATORS = ("and", "or", "not")
"""The operator names a `FormulaConfig` may allow."""


def _check_node(node, where: str) -> None:
    if not isinstance(node, NODES):
        raise FormulaError(f"{where} takes formulas (Literal, Not, And, Or), got {node!r}")


def _check_children(children, op: str) -> tuple:
    children = tuple(children)
    # A one-child AND would print as its child and parse back as something else: refuse it at construction,
    # so that every tree that exists prints and parses back to itself.
    if len(children) < 2:
        raise FormulaError(f"{op} needs at least two children, got {len(children)}; use the child itself")
    for child in children:
        _check_node(child, op)
    return children


# --- measures --------------------------------------------------------------------------------------------------

def size(f: Formula) -> int:
    """The number of literals (with repeats): what the sparsity reward counts."""
    if isinstance(f, Literal):
        return 1
    if isinstance(f, Not):
        return size(f.child)
    return sum(size(c) for c in f.children)


def depth(f: Formula) -> int:
    """Nesting of operators: a literal is 0, and NOT, AND and OR each add one level above their deepest child.

    So `'a' AND 'b' AND 'c'` is 1, `'a' AND NOT 'b'` is 2 and `'a' AND NOT ('b' OR 'c')` is 3.
    """
    if isinstance(f, Literal):
        return 0
    if isinstance(f, Not):
        return 1 + depth(f.child)
    return 1 + max(depth(c) for c in f.children)


def concepts(f: Formula) -> frozenset[int]:
    """The distinct concept ids the formula uses."""
    if isinstance(f, Literal):
        return frozenset((f.concept,))
    if isinstance(f, Not):
        return concepts(f.child)
    return frozenset().union(*(concepts(c) for c in f.children))


def operators_used(f: Formula) -> frozenset[str]:
    """The operator names ("and", "or", "not") that occur in the formula."""
    if isinstance(f, Literal):
        return frozenset()
    if isinstance(f, Not):
        return operators_used(f.child) | {"not"}
    return frozenset().union({"and" if isinstance(f, And) else "or"}, *(operators_used(c) for c in f.children))


def evaluate(f: Formula, true_concepts: frozenset[int] | set[int]) -> bool:
    """Truth of the formula when exactly the concepts in ``true_concepts`` are true (plain Python, no tensors;
    `truth.py` decides which concepts are true on an item)."""
    if isinstance(f, Literal):
        return f.concept in true_concepts
    if isinstance(f, Not):
        return not evaluate(f.child, true_concepts)
    if isinstance(f, And):
        return all(evaluate(c, true_concepts) for c in f.children)
    return any(evaluate(c, true_concepts) for c in f.children)


# --- canonical form --------------------------------------------------------------------------------------------

def canonical(f: Formula) -> Formula:
    """A normal form with the same truth value under every assignment.

    Nested ANDs (ORs) are flattened into their parent, double negations removed, duplicate children dropped (an
    AND or OR left with one child becomes that child) and children sorted by `sort_key`. It does not simplify
    further: `'a' AND NOT 'a'` stays as it is, and two equivalent formulas may have different canonical forms
    (no De Morgan, no absorption). `canonical(canonical(f)) == canonical(f)`.
    """
    if isinstance(f, Literal):
        return f
    if isinstance(f, Not):
        inner = canonical(f.child)
        return inner.child if isinstance(inner, Not) else Not(inner)
    kind = type(f)
    flat: list[Formula] = []
    for child in (canonical(c) for c in f.children):
        flat.extend(child.children if isinstance(child, kind) else (child,))
    unique = sorted(set(flat), key=sort_key)
    return unique[0] if len(unique) == 1 else kind(tuple(unique))


def sort_key(f: Formula) -> tuple:
    """A total order on formulas: literals by concept id, each negated literal right after its literal, then other
    negations, then ANDs, then ORs (each compared child by child). Used to order children in `canonical`."""
    if isinstance(f, Literal):
        return (0, f.concept, 0)
    if isinstance(f, Not):
        return (0, f.child.concept, 1) if isinstance(f.child, Literal) else (1, sort_key(f.child))
    return (2 if isinstance(f, And) else 3, tuple(sort_key(c) for c in f.children))


# --- printing --------------------------------------------------------------------------------------------------

def quote_label(label: str) -> str:
    """A label in quotes, as readers expect them: `'Python'`, or `"don't"` when only a single quote is inside.

    A backslash, and the surrounding quote when it occurs inside, are escaped with a backslash: the label
    `it's "x"` prints as `'it\\'s "x"'`.
    """
    quote = '"' if "'" in label and '"' not in label else "'"
    return quote + label.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def id_text(concept: int) -> str:
    """A concept id as it is written in the id form: 12 -> "c12"."""
    return f"c{concept}"


def to_text(f: Formula, labels: Mapping[int, str]) -> str:
    """The human form, shown to judges and people: `'Python' AND NOT ('LORD' OR 'unto')`.

    Labels are quoted (`quote_label`). Parentheses are printed only where needed: NOT binds tighter than AND, AND
    tighter than OR, and a nested AND inside an AND (OR inside an OR) keeps its parentheses, so that
    `parse(to_text(f, labels), labels) == f` for every formula whose concepts have distinct labels. A concept
    without a label is refused by name: a judge cannot read an id.
    """
    def literal(concept: int) -> str:
        label = labels.get(concept)
        if not isinstance(label, str) or not label.strip():
            raise FormulaError(f"concept {id_text(concept)} has no label, so it cannot be shown to a reader; "
                               f"use labelled concepts only (or print with to_id_text)")
        return quote_label(label)

    return _print(f, literal)


def to_id_text(f: Formula) -> str:
    """The id form, which needs no labels: `c12 AND NOT (c7 OR c3)`. Same parentheses as `to_text`."""
    return _print(f, id_text)


def _print(f: Formula, literal) -> str:
    if isinstance(f, Literal):
        return literal(f.concept)
    if isinstance(f, Not):
        inner = _print(f.child, literal)
        return f"NOT ({inner})" if isinstance(f.child, (And, Or)) else f"NOT {inner}"
    # Inside AND, a child AND or OR needs parentheses; inside OR, only a child OR does (AND binds tighter).
    wrap = (And, Or) if isinstance(f, And) else (Or,)
    parts = [f"({_print(c, literal)})" if isinstance(c, wrap) else _print(c, literal) for c in f.children]
    return (" AND " if isinstance(f, And) else " OR ").join(parts)
