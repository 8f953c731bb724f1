"""Formulas as token sequences, and the grammar state that masks what a policy may write next.

Tokens, in prefix (Polish) order with a close token: `AND c3 NOT c7 ) END` is `c3 AND NOT c7`.
- one token per concept id (token id = concept id, 0..n_concepts-1);
- `NOT` (one child), `AND` and `OR` (two or more children, ended by `)`);
- `)` closes the innermost AND or OR; `END` ends the sequence once the formula is complete.

Why prefix with a close token: the operator comes first, so the policy decides the shape before the content
and every prefix is the top of a tree still open (a stack of frames); `)` lets the policy choose how many
children an AND or OR gets after seeing them, as today's concept set would decide "one more concept or stop".
Each tree has exactly one token sequence, so a sequence's probability is the tree's probability. END is forced
(its log-prob is 0): it marks where the sequence ends, the step that carries the terminal reward.

The grammar state is an immutable stack of open frames. `classes(state, ...)` says which kinds of token may come
next: a literal that fired, a literal that did not, NOT, AND, OR, `)`, END. It is exact: a token is allowed if
and only if some completion of the sequence is a formula that fits the `FormulaConfig`, uses only allowed
concepts, and, when the item's `fired` vector is given, is true on the item. It computes, for the stack, the
fewest literals needed to finish with each truth value (`_completion_cost`), and checks that against the
literal budget. Hence every sampled sequence finishes (no dead end) and every finished one is such a formula;
conversely every such formula can be sampled. docs/formulas.md ("The formula policy") says more.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch

from pcdrl.explanations.config import FormulaConfig
from pcdrl.explanations.formula import And, Formula, FormulaError, Literal, Not, Or

# Token kinds as the mask sees them: a literal's kind is its truth value on the item (fired or not).
LIT_TRUE, LIT_FALSE, K_NOT, K_AND, K_OR, K_CLOSE, K_END = range(7)
KINDS = ("literal that fired", "literal that did not fire", "NOT", "AND", "OR", ")", "END")
OPERATOR_NAMES = ("NOT", "AND", "OR", ")", "END")
"""The non-concept tokens, in vocabulary order after the concepts."""
PAD = -1
"""Fills token tensors after END."""

_ROOT, _NOT, _AND, _OR = range(4)
_INF = float("inf")


@dataclass(frozen=True)
class Vocab:
    """The token ids for ``n_concepts`` concepts: concepts first, then NOT, AND, OR, `)`, END."""

    n_concepts: int
    """How many concepts the encoder has (concept c is token c)."""
    NOT: int = field(init=False)
    AND: int = field(init=False)
    OR: int = field(init=False)
    CLOSE: int = field(init=False)
    END: int = field(init=False)

    def __post_init__(self) -> None:
        if self.n_concepts < 1:
            raise FormulaError(f"a vocabulary needs at least one concept, got n_concepts={self.n_concepts}")
        for offset, name in enumerate(OPERATOR_NAMES):  # NOT, AND, OR, CLOSE, END follow the concepts
            object.__setattr__(self, "CLOSE" if name == ")" else name, self.n_concepts + offset)

    @property
    def size(self) -> int:
        return self.n_concepts + len(OPERATOR_NAMES)

    def name(self, token: int) -> str:
        """A token as people read it: `c12`, `NOT`, `)`, ..."""
        if 0 <= token < self.n_concepts:
            return f"c{token}"
        if self.n_concepts <= token < self.size:
            return OPERATOR_NAMES[token - self.n_concepts]
        return f"<invalid token {token}>"


@dataclass(frozen=True)
class Limits:
    """A `FormulaConfig` as a hashable key (the masks are cached per state and limits)."""

    max_literals: int
    max_depth: int
    operators: frozenset[str]

    @staticmethod
    def of(cfg: FormulaConfig) -> "Limits":
        return Limits(cfg.max_literals, cfg.max_depth, frozenset(cfg.operators))


@dataclass(frozen=True)
class GrammarState:
    """Where a partial token sequence stands. Build it with `start()` and `advance`; never mutated."""

    frames: tuple[tuple[int, int, bool], ...] = ((_ROOT, 0, False),)
    """Open nodes, outermost first: (kind, children so far capped at 2, aggregate). The aggregate is, for AND,
    "every child so far is true" and, for OR, "some child so far is true"; the root and NOT have none. Frame i's
    children sit at depth i (the number of operators above them)."""
    literals: int = 0
    """Literals written so far."""
    value: bool | None = None
    """The finished formula's truth on the item (None until the root is complete)."""
    ended: bool = False
    """Whether END has been written."""

    @property
    def complete(self) -> bool:
        """The formula is finished: only END may follow."""
        return not self.frames


def start() -> GrammarState:
    return GrammarState()


# --- which kinds of token may come next ------------------------------------------------------------------------

@lru_cache(maxsize=65536)
def classes(state: GrammarState, limits: Limits, has_true: bool, has_false: bool,
            truth: bool) -> tuple[bool, ...]:
    """Which of the seven token kinds (LIT_TRUE .. K_END) may come next.

    ``has_true`` / ``has_false``: whether some allowed concept fired / did not fire on the item. Without the truth
    mask (``truth=False``) pass every literal as not fired (has_true=False): values are then not read.
    """
    if state.ended:
        return (False,) * 7
    if state.complete:
        return (False,) * 6 + (True,)
    ok = [False] * 7
    room = limits.max_literals
    for kind, has in ((LIT_TRUE, has_true), (LIT_FALSE, has_false)):
        if has:
            ok[kind] = _feasible(_add_child(state.frames, kind == LIT_TRUE), state.literals + 1, room, limits,
                                 has_true, has_false, truth)
    # An operator opens frame len(frames), whose children sit at depth len(frames).
    if len(state.frames) <= limits.max_depth:
        for kind, name, frame in ((K_NOT, "not", (_NOT, 0, False)), (K_AND, "and", (_AND, 0, True)),
                                  (K_OR, "or", (_OR, 0, False))):
            if name in limits.operators:
                ok[kind] = _feasible(_Open(state.frames + (frame,)), state.literals, room, limits, has_true,
                                     has_false, truth)
    kind, n, agg = state.frames[-1]
    if kind in (_AND, _OR) and n >= 2:
        ok[K_CLOSE] = _feasible(_add_child(state.frames[:-1], agg), state.literals, room, limits, has_true,
                                has_false, truth)
    return tuple(ok)


def check_start(limits: Limits, has_true: bool, has_false: bool, truth: bool) -> None:
    """Refuse an item on which no formula can be written (no allowed concept, or none that can be made true)."""
    if not (has_true or has_false):
        raise FormulaError("no concept is allowed, so no formula can be written; allow at least one concept")
    if not any(classes(start(), limits, has_true, has_false, truth)):
        raise FormulaError("no allowed concept fired on this item and NOT is not allowed (or max_depth is 0), so "
                           "no true formula exists; add 'not' to operators or leave the item out")


@dataclass(frozen=True)
class _Open:
    """The stack after a token, with the root still open."""

    frames: tuple


@dataclass(frozen=True)
class _Done:
    """The root is complete, with this truth value."""

    value: bool


def _add_child(frames: tuple, value: bool):
    """The stack after a child with truth ``value`` completes in the innermost frame (completions cascade)."""
    while True:
        kind, n, agg = frames[-1]
        if kind == _ROOT:
            return _Done(value)
        if kind == _NOT:
            frames, value = frames[:-1], not value
            continue
        agg = (agg and value) if kind == _AND else (agg or value)
        return _Open(frames[:-1] + ((kind, min(n + 1, 2), agg),))


def _feasible(after, literals: int, room: int, limits: Limits, has_true: bool, has_false: bool,
              truth: bool) -> bool:
    if literals > room:
        return False
    if isinstance(after, _Done):
        return after.value or not truth
    cost_true, cost_false = _completion_cost(after.frames, limits, has_true, has_false)
    return literals + (cost_true if truth else min(cost_true, cost_false)) <= room


def _completion_cost(frames: tuple, limits: Limits, has_true: bool, has_false: bool) -> tuple[float, float]:
    """The fewest literals that finish the stack with the root true, and with it false (inf: impossible).

    The innermost frame's next child is still to be written. A fresh child costs one literal when it can be
    given the needed value: a literal of that value, or NOT over a literal of the other value when NOT is
    allowed and depth remains (no formula over literals that are all true is false without NOT, so nothing
    costs more). Each outer frame adds the cost of its in-progress child, whatever value that child takes.
    """
    can_not = "not" in limits.operators

    def fresh(value: bool, level: int) -> float:
        if (has_true if value else has_false):
            return 1
        other = has_false if value else has_true
        return 1 if can_not and level < limits.max_depth and other else _INF

    def times(count: int, cost: float) -> float:
        return count * cost if count else 0  # 0 * inf would be nan

    def finish(kind: int, n: int, agg: bool, level: int) -> tuple[float, float]:
        """(true, false) cost to finish a frame with fresh children only."""
        if kind == _ROOT:
            return fresh(True, level), fresh(False, level)
        if kind == _NOT:
            return fresh(False, level), fresh(True, level)
        must = max(0, 2 - n)  # children still owed before ')' is allowed
        any_ = min(fresh(True, level), fresh(False, level))
        # One child of the deciding value (false for AND, true for OR) decides the node; the other value needs
        # every child to have it.
        deciding = kind == _OR
        decided_already = agg if kind == _OR else not agg
        if decided_already:
            to_deciding, to_other = times(must, any_), _INF
        else:
            to_deciding = fresh(deciding, level) + times(max(1, must) - 1, any_)
            to_other = times(must, fresh(not deciding, level))
        return (to_deciding, to_other) if deciding else (to_other, to_deciding)

    level = len(frames) - 1
    cost = finish(*frames[-1], level)
    for level in range(len(frames) - 2, -1, -1):
        kind, n, agg = frames[level]
        options = []
        for child_value, child_cost in ((True, cost[0]), (False, cost[1])):
            if child_cost == _INF:
                continue
            if kind == _ROOT:
                rest = (0, _INF) if child_value else (_INF, 0)
            elif kind == _NOT:
                rest = (_INF, 0) if child_value else (0, _INF)
            else:
                new_agg = (agg and child_value) if kind == _AND else (agg or child_value)
                rest = finish(kind, min(n + 1, 2), new_agg, level)
            options.append((child_cost + rest[0], child_cost + rest[1]))
        cost = (min((o[0] for o in options), default=_INF), min((o[1] for o in options), default=_INF))
    return cost


# --- stepping ---------------------------------------------------------------------------------------------------

def kind_of(token: int, vocab: Vocab, fired: torch.Tensor | None) -> int:
    """The token's kind: a concept is LIT_TRUE when it fired on the item (truth mask on), else LIT_FALSE."""
    if 0 <= token < vocab.n_concepts:
        return LIT_TRUE if fired is not None and bool(fired[token]) else LIT_FALSE
    if vocab.n_concepts <= token < vocab.size:
        return K_NOT + token - vocab.n_concepts
    raise FormulaError(f"token {token} is outside the vocabulary of {vocab.size} tokens")


def advance(state: GrammarState, kind: int) -> GrammarState:
    """The state after a token of this kind (the caller checks that `classes` allowed it)."""
    if kind in (LIT_TRUE, LIT_FALSE):
        after, literals = _add_child(state.frames, kind == LIT_TRUE), state.literals + 1
    elif kind in (K_NOT, K_AND, K_OR):
        frame = {K_NOT: (_NOT, 0, False), K_AND: (_AND, 0, True), K_OR: (_OR, 0, False)}[kind]
        after, literals = _Open(state.frames + (frame,)), state.literals
    elif kind == K_CLOSE:
        after, literals = _add_child(state.frames[:-1], state.frames[-1][2]), state.literals
    else:
        return GrammarState((), state.literals, state.value, ended=True)
    if isinstance(after, _Done):
        return GrammarState((), literals, after.value)
    return GrammarState(after.frames, literals)


def concept_kinds(allowed: torch.Tensor, fired: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """bool [..., n]: the allowed concepts that are LIT_TRUE, and those that are LIT_FALSE."""
    if fired is None:
        return torch.zeros_like(allowed), allowed
    return allowed & fired, allowed & ~fired


def token_mask(kinds: torch.Tensor, allowed: torch.Tensor, fired: torch.Tensor | None) -> torch.Tensor:
    """bool [..., vocab]: the allowed next tokens, from `classes` rows ``kinds`` (bool [..., 7]) and the items'
    ``allowed`` (and ``fired``) concept vectors [..., n]."""
    lit_true, lit_false = concept_kinds(allowed, fired)
    concepts_ok = (lit_true & kinds[..., LIT_TRUE:LIT_TRUE + 1]) | (lit_false & kinds[..., LIT_FALSE:LIT_FALSE + 1])
    return torch.cat([concepts_ok, kinds[..., K_NOT:]], dim=-1)


def walk(tokens, vocab: Vocab, cfg: FormulaConfig, allowed: torch.Tensor | None = None,
         fired: torch.Tensor | None = None) -> list[tuple[bool, ...]]:
    """Replay one sequence (padding after END ignored): the `classes` row before each token up to END.

    Refuses a token the masks forbid, naming its position, so a sequence that passes is one a policy could have
    sampled. This is how `log_probs` recomputes the sampling masks from tokens.
    """
    limits = Limits.of(cfg)
    allowed = torch.ones(vocab.n_concepts, dtype=torch.bool) if allowed is None else allowed
    lit_true, lit_false = concept_kinds(allowed, fired)
    has_true, has_false, truth = bool(lit_true.any()), bool(lit_false.any()), fired is not None
    check_start(limits, has_true, has_false, truth)
    state, rows = start(), []
    for position, token in enumerate(int(t) for t in tokens):
        if state.ended:
            if token != PAD:
                raise FormulaError(f"token {vocab.name(token)} at position {position} comes after END")
            continue
        row = classes(state, limits, has_true, has_false, truth)
        kind = kind_of(token, vocab, fired)
        ok = row[kind] and (token >= vocab.n_concepts or bool(allowed[token]))
        if not ok:
            why = "it would break the grammar or the limits"
            if kind <= LIT_FALSE:
                why = f"concept c{token} is not allowed (unlabelled)" if not allowed[token] else \
                    f"a {KINDS[kind]} cannot keep the formula true and within the limits here" if truth else why
            raise FormulaError(f"token {vocab.name(token)} at position {position} is not allowed here ({why}); "
                               f"allowed: {', '.join(KINDS[k] for k in range(7) if row[k]) or 'nothing'}")
        rows.append(row)
        state = advance(state, kind)
    if not state.ended:
        raise FormulaError(f"the sequence stops after {len(rows)} tokens before END; the formula is unfinished")
    return rows


# --- tokens <-> formulas ----------------------------------------------------------------------------------------

def encode(f: Formula, vocab: Vocab) -> list[int]:
    """The formula as tokens, prefix order, ending with END."""
    out: list[int] = []

    def emit(node: Formula) -> None:
        if isinstance(node, Literal):
            if node.concept >= vocab.n_concepts:
                raise FormulaError(f"concept c{node.concept} is outside the vocabulary's {vocab.n_concepts} concepts")
            out.append(node.concept)
        elif isinstance(node, Not):
            out.append(vocab.NOT)
            emit(node.child)
        else:
            out.append(vocab.AND if isinstance(node, And) else vocab.OR)
            for child in node.children:
                emit(child)
            out.append(vocab.CLOSE)

    emit(f)
    return out + [vocab.END]


def decode(tokens, vocab: Vocab) -> Formula:
    """Tokens (prefix order, END optional, PAD after END ignored) -> the formula. Limits are not checked here
    (as `parse`: decode first, then `fits`). A malformed sequence is a `FormulaError` naming the position."""
    seq = [int(t) for t in tokens]
    if vocab.END in seq:
        end = seq.index(vocab.END)
        if any(t != PAD for t in seq[end + 1:]):
            raise FormulaError(f"tokens after END at position {end}")
        seq = seq[:end]
    while seq and seq[-1] == PAD:
        seq.pop()
    position = 0

    def node() -> Formula:
        nonlocal position
        if position >= len(seq):
            raise FormulaError(f"the sequence ends at position {position} where a formula is expected")
        token = seq[position]
        position += 1
        if 0 <= token < vocab.n_concepts:
            return Literal(token)
        if token == vocab.NOT:
            return Not(node())
        if token in (vocab.AND, vocab.OR):
            opened, children = position - 1, []
            while position < len(seq) and seq[position] != vocab.CLOSE:
                children.append(node())
            if position >= len(seq):
                raise FormulaError(f"the {vocab.name(token)} at position {opened} is never closed by ')'")
            position += 1
            if len(children) < 2:
                raise FormulaError(f"the {vocab.name(token)} at position {opened} has {len(children)} "
                                   f"child(ren); it needs at least two")
            return (And if token == vocab.AND else Or)(tuple(children))
        raise FormulaError(f"token {vocab.name(token)} at position {position - 1} cannot start a formula")

    f = node()
    if position != len(seq):
        raise FormulaError(f"token {vocab.name(seq[position])} at position {position} follows a complete formula")
    return f


def max_length(cfg: FormulaConfig) -> int:
    """An upper bound on tokens per sequence, END included: at most L literals and L-1 ANDs/ORs, each with its
    `)`, and up to max_depth NOTs above each of the 2L-1 other nodes."""
    n = cfg.max_literals
    return n + 2 * (n - 1) + cfg.max_depth * (2 * n - 1) + 1
