"""From a formula to the judge's prompt: `to_text` prints exactly the strings the golden prompts pin
(tests/simulators/golden/formulas/), and the judge shows them under the template's formula header."""
from __future__ import annotations

import pytest

from pcdrl.explanations import parse, to_text
from pcdrl.simulators.render import Explanation, judge_prompt, load_template

LABELS = {1: "Python", 2: "LORD", 3: "unto", 4: 'the words "Lord", "God"', 5: "numbers", 6: "don't",
          7: "questions", 8: 'it\'s "x"'}
GOLDEN_TEXTS = [  # the FORMULAS of tests/simulators/test_render.py, from the trees that print them
    ("c1 AND NOT (c2 OR c3)", "'Python' AND NOT ('LORD' OR 'unto')"),
    ("c4 OR NOT c5", "'the words \"Lord\", \"God\"' OR NOT 'numbers'"),
    ("c6 AND c7", "\"don't\" AND 'questions'"),
    ("c8 OR c5", r"""'it\'s "x"' OR 'numbers'"""),
]


@pytest.mark.parametrize("ids, text", GOLDEN_TEXTS)
def test_to_text_prints_the_golden_strings_and_they_parse_back(ids, text):
    f = parse(ids)
    assert to_text(f, LABELS) == text
    assert parse(text, LABELS) == f


def test_the_judge_reads_the_printed_formula_under_the_formula_header():
    template = load_template("default", "expert")
    text = to_text(parse("c1 AND NOT c2"), LABELS)
    prompt = judge_prompt(template, "Will it write code?", Explanation(formula=text))
    assert f"{template.parts['formula_header']} 'Python' AND NOT 'LORD'\n" in prompt
