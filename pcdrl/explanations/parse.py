"""Text -> formula: a recursive-descent parser for the grammar of docs/formulas.md.

    formula = or ;
    or      = and , { "OR" , and } ;
    and     = unary , { "AND" , unary } ;
    unary   = "NOT" , unary | atom ;
    atom    = literal | "(" , formula , ")" ;
    literal = concept id ("c12") | quoted label ("'Python'", or "\"Python\"") ;

Keywords are case-insensitive. Inside a quoted label, a backslash escapes the next character (`'don\\'t'`).
`A AND B AND C` parses to one AND of three children; `A AND (B AND C)` keeps its nesting, so that the printed
forms of formula.py parse back to the same tree. Every error is a `FormulaError` that names the position
(0-based, in characters) or the label or concept at fault.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pcdrl.explanations.formula import And, Formula, FormulaError, Literal, Not, Or, id_text
from pcdrl.runtime.config_loader import did_you_mean

MAX_NESTING = 64
"""Deeper nesting is refused (a guard against recursion limits on hostile text, far above any useful formula)."""
KEYWORDS = ("AND", "OR", "NOT")


@dataclass(frozen=True)
class Token:
    kind: str
    """One of "(", ")", "AND", "OR", "NOT", "id", "label", "end"."""
    value: object
    """The concept id (kind "id"), the unescaped label (kind "label"), or None."""
    position: int
    """Where the token starts in the text (0-based)."""


def parse(text: str, labels: Mapping[int, str] | None = None) -> Formula:
    """Parse the id form (`c12 AND NOT c7`) or the quoted-label form (`'Python' AND NOT 'LORD'`), or a mix.

    With ``labels`` (concept id -> label, labelled concepts only), a quoted label must name exactly one concept,
    and a concept id must be a labelled concept: anything else is refused by name. Without ``labels``, only ids
    are accepted (a quoted label cannot be resolved).
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula is text, got {type(text).__name__}")
    return _Parser(text, labels).parse()


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an "end" token at position len(text)."""
    tokens, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(Token(ch, None, i))
            i += 1
        elif ch in "'\"":
            label, end = _read_label(text, i)
            tokens.append(Token("label", label, i))
            i = end
        elif ch.isalnum() or ch == "_":
            end = i
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            tokens.append(_word(text, text[i:end], i))
            i = end
        else:
            raise FormulaError(f"{_where(text)}: unexpected character {ch!r} at position {i}")
    tokens.append(Token("end", None, len(text)))
    return tokens


def _read_label(text: str, start: int) -> tuple[str, int]:
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif ch == quote:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise FormulaError(f"{_where(text)}: the label opened at position {start} is never closed (missing {quote})")


def _word(text: str, word: str, position: int) -> Token:
    if word.upper() in KEYWORDS:
        return Token(word.upper(), None, position)
    if len(word) > 1 and word[0] == "c" and word[1:].isdigit() and word[1:].isascii():
        return Token("id", int(word[1:]), position)
    raise FormulaError(f"{_where(text)}: unknown word {word!r} at position {position}; a concept is written by id "
                       f"(c12) or as a quoted label ('Python'), and the operators are AND, OR, NOT")


def _where(text: str) -> str:
    shown = text if len(text) <= 200 else text[:197] + "..."
    return f"formula {shown!r}"


def _some_ids(ids: list[int], shown: int = 8) -> str:
    """The first `shown` ids and how many more: with real labels, ~170 concepts can share one label."""
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(map(id_text, ids[:shown])) + more


class _Parser:
    def __init__(self, text: str, labels: Mapping[int, str] | None):
        self.text, self.labels = text, labels
        self.tokens, self.at = tokenize(text), 0
        self.by_label: dict[str, list[int]] = {}
        for concept, label in sorted((labels or {}).items()):
            if isinstance(label, str) and label.strip():
                self.by_label.setdefault(label, []).append(concept)
        self.labelled = {c for ids in self.by_label.values() for c in ids}

    def fail(self, message: str, token: Token, then: str = ""):
        """Raise "<formula>: <message> at position <n><then>"."""
        end = " (end of formula)" if token.kind == "end" else ""
        raise FormulaError(f"{_where(self.text)}: {message} at position {token.position}{end}{then}")

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def parse(self) -> Formula:
        if self.peek().kind == "end":
            raise FormulaError(f"{_where(self.text)}: empty formula; write at least one concept")
        f = self.disjunction(0)
        token = self.peek()
        if token.kind != "end":
            self.fail("unmatched ')'" if token.kind == ")" else "expected AND, OR or the end of the formula", token)
        return f

    def disjunction(self, nesting: int) -> Formula:
        return self.chain("OR", Or, self.conjunction, nesting)

    def conjunction(self, nesting: int) -> Formula:
        return self.chain("AND", And, self.unary, nesting)

    def chain(self, keyword: str, node, operand, nesting: int) -> Formula:
        children = [operand(nesting)]
        while self.peek().kind == keyword:
            self.take()
            children.append(operand(nesting))
        return children[0] if len(children) == 1 else node(tuple(children))

    def unary(self, nesting: int) -> Formula:
        token = self.peek()
        if nesting > MAX_NESTING:
            self.fail(f"nested deeper than {MAX_NESTING} levels", token)
        if token.kind == "NOT":
            self.take()
            return Not(self.unary(nesting + 1))
        if token.kind == "(":
            self.take()
            inner = self.disjunction(nesting + 1)
            if self.peek().kind != ")":
                self.fail("expected ')', AND or OR", self.peek(), f", to close the '(' at position {token.position}")
            self.take()
            return inner
        if token.kind in ("id", "label"):
            self.take()
            return Literal(self.resolve(token))
        self.fail("expected a literal, NOT or '('", token)

    def resolve(self, token: Token) -> int:
        if token.kind == "id":
            if self.labels is not None and token.value not in self.labelled:
                self.fail(f"concept {id_text(token.value)}", token,
                          " is unknown or has no label; only labelled concepts can be shown")
            return token.value
        label = token.value
        if self.labels is None:
            self.fail(f"label {label!r}", token,
                      " cannot be resolved without the concept labels; pass labels=, or write the concept id")
        ids = self.by_label.get(label, [])
        if not ids:
            raise FormulaError(f"{_where(self.text)}: unknown label {label!r} at position {token.position}"
                               f"{did_you_mean(label, self.by_label)}")
        if len(ids) > 1:
            self.fail(f"label {label!r}", token,
                      f" is ambiguous: concepts {_some_ids(ids)} share it; write one of them by id")
        return ids[0]
