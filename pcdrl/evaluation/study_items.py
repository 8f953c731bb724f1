"""items.json: every held-out item `pcdrl eval` scored, what each row showed on it, and each judge's answer.

The human-study page (`pcdrl study`) serves these items to people and to simulated participants, and compares
their answers with the judges' own. So the file holds everything a page needs (question, options, the explanation
of every main row) and everything a comparison needs (each judge's calibrated scores and probabilities per row),
plus each judge's full config, so that a simulated participant can rebuild exactly the judge the eval ran.
"""
from __future__ import annotations

from pathlib import Path

from pcdrl.runtime.atomic import atomic_write_json
from pcdrl.runtime.config_loader import to_dict
from pcdrl.simulators.config import JudgeConfig

FORMAT = "pcdrl-eval-items/1"
"""Bumped when the layout below changes; `pcdrl study` refuses a format it does not know."""


def shown_on(row: str, item: dict, shown: dict[str, list[dict]], index: int) -> dict:
    """What row `row` showed the judge on this item: nothing (prior), S's output (oracle), labels or a formula."""
    if row == "prior":
        return {"kind": "none"}
    if row == "oracle":
        return {"kind": "oracle", "oracle": item["behaviour"]}
    entry = shown[row][index]
    if "formula" in entry:
        return {"kind": "formula", "formula": entry["text"]}
    return {"kind": "labels", "labels": list(entry["labels"])}


def study_items(items: list[dict], rows: list[str], shown: dict[str, list[dict]],
                answers: dict[str, dict[str, list[dict]]], judges: list[JudgeConfig], training: str,
                eval_info: dict) -> dict:
    """The items.json document (see the module docstring). `rows` are the eval's main rows, in its order."""
    records = []
    for i, item in enumerate(items):
        judged = {judge: {row: {"scores": list(rows_[row][i]["scores"]), "probs": list(rows_[row][i]["probs"])}
                          for row in rows if row in rows_}
                  for judge, rows_ in answers.items()}
        records.append({
            "id": item["id"], "family": item["family"], "question": item["question"],
            "options": list(item["options"]), "answer": item["answer"], "text": item.get("text", ""),
            "behaviour": item["behaviour"],
            "shown": {row: shown_on(row, item, shown, i) for row in rows},
            "judged": judged,
        })
    return {
        "format": FORMAT, "eval": eval_info, "rows": list(rows),
        "judges": {j.name: {"role": "training" if j.name == training else "held-out", "config": to_dict(j)}
                   for j in judges},
        "items": records,
    }


def write_study_items(out: Path, document: dict) -> Path:
    path = Path(out) / "items.json"
    atomic_write_json(path, document)
    return path
