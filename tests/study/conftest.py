"""Fixtures for the study tests: a synthetic eval folder (items.json as `pcdrl eval` writes it, with hostile
text in labels, options and formulas) and studies started from it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcdrl.simulators.config import JudgeConfig
from pcdrl.evaluation.study_items import study_items as eval_items_document
from pcdrl.study.config import StudyConfig
from pcdrl.study.serve import open_study

HOSTILE = "<script>alert(1)</script> & \"quotes\""
ROWS = ["prior", "random", "pretrained", "rl/0", "oracle"]


def synthetic_eval(folder: Path, n_items: int = 12, formula: bool = False) -> Path:
    """An eval folder whose items.json has `n_items` items; the judge 'smollm2' is right on rl/0 and oracle,
    wrong on random, half right on pretrained, and tied everywhere on the prior (as PMI makes it)."""
    items, shown = [], {row: [] for row in ROWS if row not in ("prior", "oracle")}
    answers = {"smollm2": {row: [] for row in ROWS}}
    for i in range(n_items):
        options = [f"option {i}-{k}" for k in range(4)]
        options[1] = f" {HOSTILE} {i}"  # leading space and markup must survive the page round trip
        answer = i % 4
        items.append({"id": f"cont-{i:04d}", "family": "continuation", "question": "Which text will the model "
                      "write next?", "options": options, "answer": answer, "text": f"text {i}",
                      "behaviour": options[answer]})
        for row in shown:
            if formula and row == "rl/0":
                shown[row].append({"formula": [[1, 2]], "text": f"'{HOSTILE}' AND NOT 'numbers {i}'"})
            else:
                # labels never name their row: the pages must not give the condition away (blinding)
                shown[row].append({"concepts": [1, 2], "labels": [f"concept {i}.{len(row)}", HOSTILE]})
        for row in ROWS:
            scores = [0.0] * 4
            if row in ("rl/0", "oracle") or (row == "pretrained" and i % 2 == 0):
                scores[answer] = 2.0
            elif row in ("random", "pretrained"):
                scores[(answer + 1) % 4] = 1.5
            probs = [0.25] * 4 if row == "prior" else [0.7 if s == max(scores) else 0.1 for s in scores]
            answers["smollm2"][row].append({"scores": scores, "probs": probs, "raw": scores})
    document = eval_items_document(items, ROWS, shown, answers, [JudgeConfig(name="smollm2")], "smollm2",
                                   {"runs": ["runs/x/seed0"], "seeds": [0], "split": "test",
                                    "families": ["continuation"], "n_items": n_items})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.json").write_text(json.dumps(document))
    (folder / "summary.json").write_text(json.dumps({"n_items": n_items}))
    return folder


@pytest.fixture
def hostile() -> str:
    """Markup that must reach people as text (tests import nothing from conftest: pytest runs in importlib mode)."""
    return HOSTILE


@pytest.fixture
def make_eval():
    """`synthetic_eval(folder, n_items=12, formula=False)`, for tests that need their own eval folder."""
    return synthetic_eval


@pytest.fixture
def eval_dir(tmp_path) -> Path:
    return synthetic_eval(tmp_path / "eval")


@pytest.fixture
def store(eval_dir, tmp_path):
    """A started study: 12 items, 5 conditions, 5 items per participant (one per condition)."""
    opened, _ = open_study(eval_dir, tmp_path / "study", StudyConfig(items_per_participant=5))
    yield opened
    opened.close()
