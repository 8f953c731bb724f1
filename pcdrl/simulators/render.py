"""Explanations, and the judge prompts built from them, as plain text. Pure functions.

An explanation is concept labels (a numbered list), a formula over concepts (already printed as text,
by `pcdrl.explanations.to_text`: simulators sits below explanations and only ever sees the string), or
for the oracle row, S's actual output. The prompt without an explanation serves both the prior row
and the PMI calibration.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from pcdrl.runtime.config_loader import SHIPPED_CONFIGS

DEFAULT_TEMPLATES = SHIPPED_CONFIGS / "judges" / "templates.yaml"
TEMPLATE_KEYS = ("with_explanation", "without_explanation", "concepts_header", "concept_item",
                 "formula_header", "oracle_header", "option")


class EmptyExplanationError(ValueError):
    pass


@dataclass(frozen=True)
class Explanation:
    labels: tuple[str, ...] = ()
    """Concept labels, most important first."""
    formula: str = ""
    """A propositional formula over concept labels, as `pcdrl.explanations.to_text` prints it
    (`'Python' AND NOT 'LORD'`); shown under the template's `formula_header` instead of the labels."""
    oracle: str | None = None
    """S's actual output (the oracle row only); an empty output is shown as "(nothing)"."""


@dataclass(frozen=True)
class Template:
    name: str
    persona: str
    parts: dict = field(hash=False)


@lru_cache(maxsize=8)
def _read(path: str) -> dict:
    return yaml.safe_load(Path(path).read_text())


def load_template(name: str = "default", persona: str = "novice", path: str = "") -> Template:
    data = _read(str(path or DEFAULT_TEMPLATES))
    if name not in data.get("templates", {}):
        raise ValueError(f"judge template '{name}' not in {path or DEFAULT_TEMPLATES}; have: {', '.join(data['templates'])}")
    if persona not in data.get("personas", {}):
        raise ValueError(f"judge persona '{persona}' not in {path or DEFAULT_TEMPLATES}; have: {', '.join(data['personas'])}")
    parts = data["templates"][name]
    missing = [k for k in TEMPLATE_KEYS if k not in parts]
    if missing:
        raise ValueError(f"judge template '{name}' lacks {', '.join(missing)}")
    return Template(name=name, persona=data["personas"][persona], parts=parts)


def render_explanation(explanation: Explanation, template: Template, max_labels: int = 8) -> str:
    parts = template.parts
    labels = [label.strip() for label in explanation.labels if label and label.strip()][:max_labels]
    if explanation.oracle is not None:
        return f"{parts['oracle_header']} {' '.join(explanation.oracle.split()) or '(nothing)'}"
    if explanation.formula.strip():
        return f"{parts['formula_header']} {explanation.formula.strip()}"
    if not labels:
        raise EmptyExplanationError(
            "empty explanation: no concept labels, formula or oracle text to show the judge "
            "(for the no-explanation prior, pass explanation=None)"
        )
    items = [parts["concept_item"].format(index=i, label=label) for i, label in enumerate(labels, start=1)]
    return "\n".join([parts["concepts_header"], *items])


def judge_prompt(template: Template, question: str, explanation: Explanation | None, max_labels: int = 8) -> str:
    if not question.strip():
        raise ValueError("empty question")
    if explanation is None:
        return template.parts["without_explanation"].format(persona=template.persona, question=question.strip())
    return template.parts["with_explanation"].format(
        persona=template.persona, question=question.strip(),
        explanation=render_explanation(explanation, template, max_labels),
    )


def option_text(template: Template, option: str) -> str:
    return template.parts["option"].format(option=option)
