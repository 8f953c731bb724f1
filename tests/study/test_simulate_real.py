"""The real default judge (SmolLM2) as 20 concurrent simulated participants, through the study's HTTP pages.

The eval side is built the way `pcdrl eval` builds it: the same judge scores every row of every item and the
answers go into items.json. The simulated participants then read only the served HTML. So every pick must be the
judge's own top option on that item under that condition (up to float noise between batch shapes), no answer may
be lost or stored twice, and each participant finishes their plan.
"""
import json
import sqlite3

import pytest

from pcdrl.models.backends.base import BackendConfig
from pcdrl.evaluation.study_items import shown_on, study_items as eval_items_document
from pcdrl.simulators.config import JudgeConfig
from pcdrl.simulators.judge import Judge
from pcdrl.simulators.render import Explanation
from pcdrl.study.config import StudyConfig
from pcdrl.study.serve import StudyServer, open_study
from pcdrl.study.simulate import simulate

ROWS = ["prior", "random", "pretrained", "rl/0", "oracle"]
OPTIONS = [["the Lord said", "import os", "seven days", "return None"],
           ["And God saw", "def main():", "the light", "x = 1"],
           ["numbers", "Python code", "in the beginning", "<b>bold</b> & co"]]
LABELS = {"random": ["sentence-final punctuation", "numbers"], "pretrained": ["Bible verses", "code"],
          "rl/0": ["Python keywords", "the word 'the'"]}


def _items(n: int) -> list[dict]:
    return [{"id": f"real-{i:03d}", "family": "continuation", "question": "Which text will the model write next?",
             "options": OPTIONS[i % 3], "answer": i % 4, "text": "", "behaviour": OPTIONS[i % 3][i % 4]}
            for i in range(n)]


def _explanation(shown: dict):
    kinds = {"none": None, "labels": lambda s: Explanation(labels=tuple(s["labels"])),
             "oracle": lambda s: Explanation(oracle=s["oracle"])}
    return kinds[shown["kind"]] and kinds[shown["kind"]](shown)


@pytest.mark.real_model
def test_twenty_concurrent_simulated_participants_pick_what_the_eval_scored(tmp_path):
    cfg = JudgeConfig(name="smollm2", backend=BackendConfig(model="smollm2-135m-instruct"))
    judge = Judge(cfg)
    items = _items(10)
    shown = {row: [{"concepts": [1, 2], "labels": LABELS[row]} for _ in items] for row in LABELS}
    answers = {"smollm2": {}}
    for row in ROWS:
        explanations = [_explanation(shown_on(row, it, shown, i)) for i, it in enumerate(items)]
        got = judge.answer([it["question"] for it in items], [it["options"] for it in items], explanations)
        answers["smollm2"][row] = [{"scores": s, "probs": p} for s, p in zip(got.scores, got.probs)]
    document = eval_items_document(items, ROWS, shown, answers, [cfg], "smollm2", {"n_items": len(items)})
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "items.json").write_text(json.dumps(document))

    store, _ = open_study(tmp_path / "eval", tmp_path / "study", StudyConfig(items_per_participant=5))
    with StudyServer(store, quiet=True) as server:
        result = simulate(server.url, judge, 20, concurrency=20)
    judge.close()

    planned = sum(p["planned"] for p in store.participants())
    rows = store.answers()
    assert result["participants"] == 20 and result["answers"] == len(rows) == planned == 20 * 5
    assert sqlite3.connect(store.path).execute(
        "SELECT COUNT(*) FROM (SELECT DISTINCT participant, item FROM answers)").fetchone()[0] == len(rows)
    by_id = {it["id"]: it for it in document["items"]}
    for row in rows:
        scores = by_id[row["item"]]["judged"]["smollm2"][row["condition"]]["scores"]
        assert scores[row["choice"]] >= max(scores) - 1e-3, row
    oracle = [r["correct"] for r in rows if r["condition"] == "oracle"]
    assert sum(oracle) / len(oracle) > 0.75  # told what S writes, SmolLM2 finds it
    store.close()
