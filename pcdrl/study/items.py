"""The study's item set: read from an eval folder's items.json (written by `pcdrl eval`), checked, and cut down
to the study's conditions and items. The result is frozen into the study's database when the study starts."""
from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

from pcdrl.evaluation.study_items import FORMAT as ITEMS_FORMAT
from pcdrl.study.config import StudyConfig

KINDS = ("none", "labels", "formula", "oracle")
RERUN = ("rerun `pcdrl eval RUN --out {dir}` with this version of pcdrl: it writes items.json, and its judge "
         "answers are journalled in scores.jsonl, so only the outputs are rewritten")


class StudyInputError(ValueError):
    """An eval folder that cannot seed a study; the message says what was expected and how to get it."""


def read_eval_items(eval_dir: str | Path) -> tuple[dict, str]:
    """The items.json document of an eval folder, and its sha256 (recorded, so a report can name its source)."""
    folder = Path(eval_dir)
    if not folder.is_dir():
        raise StudyInputError(f"{folder}: no such eval folder; give the --out folder of `pcdrl eval`")
    path = folder / "items.json"
    if not path.is_file():
        found = "its summary.json is there" if (folder / "summary.json").is_file() else "it holds no summary.json either"
        raise StudyInputError(f"{path}: missing. A study needs the eval's items.json (every held-out item, what each "
                              f"row showed on it and each judge's answer), and {found}: " + RERUN.format(dir=folder))
    raw = path.read_bytes()
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as err:
        raise StudyInputError(f"{path}: not valid JSON ({err}); " + RERUN.format(dir=folder)) from None
    _check_document(document, path)
    return document, hashlib.sha256(raw).hexdigest()


def _check_document(document, path: Path) -> None:
    if not isinstance(document, dict) or document.get("format") != ITEMS_FORMAT:
        got = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise StudyInputError(f"{path}: format {got!r}, expected {ITEMS_FORMAT!r}; " + RERUN.format(dir=path.parent))
    for key in ("rows", "judges", "items"):
        if not document.get(key):
            raise StudyInputError(f"{path}: '{key}' is missing or empty; " + RERUN.format(dir=path.parent))
    for n, item in enumerate(document["items"]):
        missing = [k for k in ("id", "question", "options", "answer", "shown", "judged") if k not in item]
        if missing:
            raise StudyInputError(f"{path}: item {n} lacks {missing}; " + RERUN.format(dir=path.parent))
        absent = [row for row in document["rows"] if row not in item["shown"]]
        if absent:
            raise StudyInputError(f"{path}: item {item['id']} has no explanation for rows {absent}")
        if not 0 <= item["answer"] < len(item["options"]):
            raise StudyInputError(f"{path}: item {item['id']}: answer {item['answer']} is not an option index")


def default_conditions(rows: list[str]) -> list[str]:
    """Every main row but the RL seeds after the first (people see one RL policy, and for a formula eval with
    matched concept runs, one of those: rl_concepts/0)."""
    return [row for row in rows if not re.fullmatch(r"rl(_concepts)?/[1-9]\d*", row)]


def study_items(document: dict, cfg: StudyConfig) -> dict:
    """The frozen item set: the conditions, the items (a seeded draw of `max_items`), each item's explanation and
    judge answers under those conditions, and the judges' configs."""
    rows = document["rows"]
    conditions = list(cfg.conditions) or default_conditions(rows)
    unknown = [c for c in conditions if c not in rows]
    if unknown:
        raise StudyInputError(f"conditions: {unknown} are not rows of this eval; it has {rows} (prior is the "
                              "no-explanation condition)")
    per = cfg.items_per_participant or 4 * len(conditions)
    if per < len(conditions):
        raise StudyInputError(f"items_per_participant: {per} is fewer than the {len(conditions)} conditions "
                              f"{conditions}; each participant must see every condition")
    items = document["items"]
    if cfg.max_items and len(items) > cfg.max_items:
        chosen = sorted(random.Random(f"{cfg.seed}:draw").sample(range(len(items)), cfg.max_items))
        items = [items[i] for i in chosen]
    if len(items) < len(conditions):
        raise StudyInputError(f"{len(items)} items for {len(conditions)} conditions: each participant must see every "
                              "condition, so a study needs at least one item per condition")
    frozen = [{"id": it["id"], "family": it.get("family", ""), "question": it["question"],
               "options": it["options"], "answer": it["answer"],
               "shown": {c: it["shown"][c] for c in conditions},
               "judged": {j: {c: rows_[c] for c in conditions if c in rows_} for j, rows_ in it["judged"].items()}}
              for it in items]
    for it in frozen:
        bad = [c for c, shown in it["shown"].items() if shown.get("kind") not in KINDS]
        if bad:
            raise StudyInputError(f"item {it['id']}: rows {bad} have an unknown explanation kind; expected one of {KINDS}")
    return {"conditions": conditions, "items_per_participant": per, "items": frozen,
            "judges": document["judges"], "eval": document.get("eval", {})}
