"""Limits on the formulas a policy may write, as a typed config checked at construction."""
from __future__ import annotations

from dataclasses import dataclass, field

from pcdrl.explanations.formula import OPERATORS, Formula, depth, operators_used, size
from pcdrl.runtime.config_loader import ConfigError, all_of, at_least


@dataclass
class FormulaConfig:
    """How large a formula may be, and which operators it may use."""

    max_literals: int = 4
    """At most this many literals (repeats counted): the formula's size, which the sparsity reward counts."""
    max_depth: int = 3
    """At most this much nesting of operators (a literal is 0; NOT, AND and OR each add a level), so the default
    holds `'a' AND NOT ('b' OR 'c')`."""
    operators: list[str] = field(default_factory=lambda: list(OPERATORS))
    """The operators allowed, from: and, or, not. `[and]` gives conjunctions only (today's concept sets)."""

    def __post_init__(self) -> None:
        at_least("max_literals", self.max_literals, 1, " (a formula has at least one literal)")
        at_least("max_depth", self.max_depth, 0, " (0 allows a single literal)")
        all_of("operators", self.operators, OPERATORS)
        # AND and OR take any number of children, so one level holds every literal: depth 1 is enough for any
        # size above 1, and depth 0 (a bare literal) only for size 1.
        if self.max_literals > 1 and self.max_depth < 1:
            raise ConfigError(f"max_depth: 0 holds a single literal, but max_literals is {self.max_literals}; "
                              f"raise max_depth to at least 1 or lower max_literals to 1")
        if self.max_literals > 1 and not {"and", "or"} & set(self.operators):
            raise ConfigError(f"operators: {self.operators} cannot join {self.max_literals} literals; add 'and' "
                              f"or 'or', or lower max_literals to 1")


def violations(f: Formula, cfg: FormulaConfig) -> list[str]:
    """Why a formula breaks the limits, one sentence per limit broken (empty when it fits)."""
    out = []
    if size(f) > cfg.max_literals:
        out.append(f"{size(f)} literals, over max_literals={cfg.max_literals}")
    if depth(f) > cfg.max_depth:
        out.append(f"depth {depth(f)}, over max_depth={cfg.max_depth}")
    extra = sorted(operators_used(f) - set(cfg.operators))
    if extra:
        out.append(f"uses {', '.join(extra)}, not in operators={cfg.operators}")
    return out


def fits(f: Formula, cfg: FormulaConfig) -> bool:
    """Whether the formula respects every limit of ``cfg``."""
    return not violations(f, cfg)
