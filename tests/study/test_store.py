"""The study database: frozen at the start, one row per answer, nothing stored twice, nothing lost on reopen."""
import json
import sqlite3
import threading

import pytest

from pcdrl.study.config import StudyConfig
from pcdrl.study.items import StudyInputError
from pcdrl.study.serve import open_study
from pcdrl.study.store import StudyStore, StudyStoreError


def test_the_config_and_items_are_frozen_when_the_study_starts(store, eval_dir, tmp_path):
    assert store.conditions == ["prior", "random", "pretrained", "rl/0", "oracle"]
    assert len(store.items) == 12 and store.per_participant == 5
    assert json.loads(dict(sqlite3.connect(store.path).execute("SELECT key, value FROM meta"))["config"])[
        "items_per_participant"] == 5
    # the eval folder changing afterwards does not change the study
    (eval_dir / "items.json").write_text("{}")
    reopened, created = open_study(eval_dir, tmp_path / "study", None)
    assert not created and len(reopened.items) == 12
    reopened.close()


def test_a_different_config_for_a_started_study_is_refused(store, eval_dir, tmp_path):
    with pytest.raises(StudyStoreError, match="items_per_participant.*frozen"):
        open_study(eval_dir, tmp_path / "study", StudyConfig(items_per_participant=6))


def test_a_new_study_needs_an_empty_folder(eval_dir, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(StudyStoreError, match="holds other files"):
        open_study(eval_dir, tmp_path / "busy", None)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_unknown_conditions_and_too_few_items_are_refused(eval_dir, tmp_path):
    with pytest.raises(StudyInputError, match=r"\['rl'\] are not rows of this eval"):
        open_study(eval_dir, tmp_path / "a", StudyConfig(conditions=["prior", "rl"]))
    with pytest.raises(StudyInputError, match="at least one item per condition"):
        open_study(eval_dir, tmp_path / "b", StudyConfig(max_items=3))


def test_answers_are_stored_once_with_the_time_taken(store):
    pid = store.new_participant()
    step = store.next_step(pid, now=100.0)
    assert store.next_step(pid, now=150.0) == step  # a reload neither moves on nor restarts the clock
    assert store.record(pid, step, 2, now=104.5)
    assert not store.record(pid, step, 1, now=105.0)
    rows = store.answers()
    assert len(rows) == 1
    assert rows[0]["choice"] == 2 and rows[0]["seconds"] == 4.5 and rows[0]["condition"] == step.condition
    assert rows[0]["correct"] == int(step.item["answer"] == 2)
    assert store.next_step(pid).position == 1
    assert store.progress(pid) == (1, len(json.loads(sqlite3.connect(store.path).execute(
        "SELECT plan FROM participants WHERE id = ?", (pid,)).fetchone()[0])))


def test_concurrent_starts_get_distinct_slots(store):
    ids = []
    threads = [threading.Thread(target=lambda: ids.append(store.new_participant())) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots = [p["slot"] for p in store.participants()]
    assert sorted(slots) == list(range(20)) and len(set(ids)) == 20


def test_a_committed_answer_survives_an_abandoned_connection(store, tmp_path):
    pid = store.new_participant()
    store.record(pid, store.next_step(pid), 0)
    # no close(): as if the server were killed; a new connection reads the answer back from the WAL
    again = StudyStore(tmp_path / "study")
    assert [a["participant"] for a in again.answers()] == [pid]
    again.close()


def test_a_folder_without_a_study_says_how_to_start_one(tmp_path):
    with pytest.raises(StudyStoreError, match="pcdrl study serve EVAL_DIR"):
        StudyStore(tmp_path)
