"""Golden prompts pin every template and persona: a template change must update these files on purpose
(PCDRL_UPDATE_GOLDEN=1 pytest tests/simulators/test_render.py rewrites them; review the diff)."""
import os
from pathlib import Path

import pytest
import yaml

from pcdrl.simulators.render import (DEFAULT_TEMPLATES, EmptyExplanationError, Explanation, judge_prompt, load_template,
                               option_text)

GOLDEN = Path(__file__).parent / "golden"
SPEC = yaml.safe_load(DEFAULT_TEMPLATES.read_text())
CASES = {
    "none": None,
    "concepts": Explanation(labels=("the words \"Lord\", \"God\"", "  numbers  ", "", "questions")),
    "formula": Explanation(formula="(c1 AND NOT c2) OR c3"),
    "oracle": Explanation(oracle="  I'm sorry,\n but I can't help.  "),
}


def render_all(template: str, persona: str) -> str:
    t = load_template(template, persona)
    blocks = [f"=== {kind} ===\n{judge_prompt(t, 'Will the model refuse to help?', e)}" for kind, e in CASES.items()]
    blocks.append(f"=== option ===\n{option_text(t, 'Yes')!r}")
    return "\n".join(blocks) + "\n"


@pytest.mark.parametrize("template", sorted(SPEC["templates"]))
@pytest.mark.parametrize("persona", sorted(SPEC["personas"]))
def test_golden_prompts(template, persona):
    path = GOLDEN / f"{template}-{persona}.txt"
    rendered = render_all(template, persona)
    if os.environ.get("PCDRL_UPDATE_GOLDEN") == "1":
        path.write_text(rendered)
    assert path.exists(), f"no golden file for {template}/{persona}; run with PCDRL_UPDATE_GOLDEN=1 and review it"
    assert rendered == path.read_text()


def test_every_template_and_persona_has_a_golden_file():
    expected = {f"{t}-{p}.txt" for t in SPEC["templates"] for p in SPEC["personas"]}
    assert expected == {p.name for p in GOLDEN.glob("*.txt")}


def test_labels_are_numbered_capped_and_blank_ones_dropped():
    prompt = judge_prompt(load_template(), "Q?", Explanation(labels=tuple(f"c{i}" for i in range(12)) + ("",)), max_labels=3)
    assert "1) c0\n2) c1\n3) c2\n\nQuestion: Q?" in prompt and "c3" not in prompt


def test_empty_explanation_is_an_error():
    with pytest.raises(EmptyExplanationError, match="empty explanation"):
        judge_prompt(load_template(), "Q?", Explanation(labels=("", "  ")))


def test_unknown_template_or_persona():
    with pytest.raises(ValueError, match="judge template 'fancy' not in .*have: default"):
        load_template("fancy")
    with pytest.raises(ValueError, match="judge persona 'child'"):
        load_template("default", "child")


# --- formulas: the judge reads the text `pcdrl.explanations.to_text` prints (simulators takes it as a string) -------

FORMULA_GOLDEN = GOLDEN / "formulas"
FORMULAS = {
    "not-or": "'Python' AND NOT ('LORD' OR 'unto')",
    "quotes-in-labels": "'the words \"Lord\", \"God\"' OR NOT 'numbers'",
    "apostrophe": "\"don't\" AND 'questions'",
    "both-quotes": r"""'it\'s "x"' OR 'numbers'""",
}


def render_formulas(template: str, persona: str) -> str:
    t = load_template(template, persona)
    blocks = [f"=== {kind} ===\n{judge_prompt(t, 'Will the model refuse to help?', Explanation(formula=text))}"
              for kind, text in FORMULAS.items()]
    return "\n".join(blocks) + "\n"


@pytest.mark.parametrize("template", sorted(SPEC["templates"]))
@pytest.mark.parametrize("persona", sorted(SPEC["personas"]))
def test_golden_formula_prompts(template, persona):
    path = FORMULA_GOLDEN / f"{template}-{persona}.txt"
    rendered = render_formulas(template, persona)
    if os.environ.get("PCDRL_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(rendered)
    assert path.exists(), f"no formula golden for {template}/{persona}; run with PCDRL_UPDATE_GOLDEN=1 and review it"
    assert rendered == path.read_text()


def test_every_template_and_persona_has_a_formula_golden_file():
    expected = {f"{t}-{p}.txt" for t in SPEC["templates"] for p in SPEC["personas"]}
    assert expected == {p.name for p in FORMULA_GOLDEN.glob("*.txt")}


def test_a_formula_replaces_the_concept_list_under_the_formula_header():
    t = load_template("default", "novice")
    prompt = judge_prompt(t, "Q?", Explanation(labels=("numbers",), formula="  'Python' AND NOT 'LORD'  "))
    assert f"\n\n{t.parts['formula_header']} 'Python' AND NOT 'LORD'\n\nQuestion: Q?" in prompt
    assert t.parts["concepts_header"] not in prompt and "numbers" not in prompt
