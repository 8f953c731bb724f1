"""FormulaConfig: limits refused at load, naming the field and the fix; `fits` reads the limits."""
from __future__ import annotations

import pytest

from pcdrl.explanations import FormulaConfig, fits, parse, violations
from pcdrl.runtime.config_loader import ConfigError, from_dict


@pytest.mark.parametrize("raw, message", [
    ({"max_literals": 0}, r"max_literals: must be >= 1"),
    ({"max_depth": -1}, r"max_depth: must be >= 0"),
    ({"max_depth": 0}, r"max_depth: 0 holds a single literal, but max_literals is 4; raise max_depth to at least 1 "
                       r"or lower max_literals to 1"),
    ({"operators": ["and", "nto"]}, r"operators\[1\]: 'nto' is not one of and, or, not\. Did you mean 'not'\?"),
    ({"operators": ["and", "and"]}, r"names an entry twice"),
    ({"operators": ["not"]}, r"operators: \['not'\] cannot join 4 literals; add 'and' or 'or'"),
])
def test_bad_limits_are_refused_at_load(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(FormulaConfig, raw)


def test_the_message_sits_under_the_section_it_was_loaded_at():
    with pytest.raises(ConfigError, match=r"^formula\.max_depth: 0 holds a single literal"):
        from_dict(FormulaConfig, {"max_depth": 0}, prefix="formula")


def test_the_smallest_limits_that_hold_together_are_accepted():
    assert FormulaConfig(max_literals=1, max_depth=0, operators=[]).max_depth == 0
    assert FormulaConfig(max_literals=9, max_depth=1, operators=["or"]).max_literals == 9


def test_fits_checks_size_depth_and_operators():
    cfg = FormulaConfig(max_literals=3, max_depth=2, operators=["and", "not"])
    assert fits(parse("c1 AND NOT c2 AND c3"), cfg)
    assert violations(parse("c1 AND c2 AND c3 AND c4"), cfg) == ["4 literals, over max_literals=3"]
    assert violations(parse("c1 AND NOT (c2 AND c3)"), cfg) == ["depth 3, over max_depth=2"]
    assert violations(parse("c1 OR c2"), cfg) == ["uses or, not in operators=['and', 'not']"]
    assert fits(parse("c1"), FormulaConfig(max_literals=1, max_depth=0, operators=[]))
