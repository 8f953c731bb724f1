"""The study page in a real browser (the issue's acceptance test): headless Chromium, driven by Playwright, plays one
participant through 6 items served by `pcdrl study serve` as a subprocess. Halfway through, the server is killed
(SIGKILL) and restarted on the study folder: the 3 answers already given are in SQLite, the browser carries on
from item 4, and at the end the 6 rows match the clicks, the conditions are balanced, and `pcdrl study report`
counts the participant's accuracy as a hand count of the rows does. No model is loaded."""
from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pcdrl.study.report import write_study_report

KIND_OF = {"prior": "none", "random": "labels", "pretrained": "labels", "rl/0": "labels", "oracle": "oracle"}
"""What each condition of the synthetic eval shows (the page is blinded: only the kind of note is visible)."""
N_ITEMS, PER_PARTICIPANT = 18, 6  # three chunks of exactly 6 items (design.py)


def chromium() -> str:
    """Debian's chromium, as tests/evaluation/test_report.py finds it: missing is a failure, not a skip
    (`make test` installs it, so a test that silently skipped would hide a broken CI)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and Path("/usr/lib/chromium/chromium").is_file():
        path = "/usr/lib/chromium/chromium"
    if path is None:
        pytest.fail("chromium is not installed: install Debian's `chromium` package "
                    "(`sudo apt-get install chromium`, or `make browser`) to run the study browser test")
    return path


def serve(eval_dir: Path, study: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`pcdrl study serve` as a subprocess; (the process, its URL) once it prints "serving on URL"."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PCDRL_NO_PROGRESS": "1"}
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "pcdrl", "study", "serve", str(eval_dir), "--study",
                                    str(study), "--port", "0", *extra], stdout=subprocess.PIPE, stderr=stderr,
                                   text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        line = process.stdout.readline() if ready else ""
        found = re.search(r"serving on (http://\S+)", line)
        if found:
            return process, found.group(1)
        if process.poll() is not None:
            break
    process.kill()
    pytest.fail(f"`pcdrl study serve` did not start (rc {process.poll()}):\n{log.read_text()}")


def kill(process: subprocess.Popen) -> None:
    """SIGKILL: no shutdown handler runs, so whatever survives was committed before the page moved on."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stdout.close()


def stored_answers(study: Path) -> list[dict]:
    with sqlite3.connect(study / "study.sqlite") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT participant, item, condition, position, choice, correct, seconds, answered_at "
                          "FROM answers ORDER BY position").fetchall()
    return [dict(row) for row in rows]


def answer_item(page, eval_items: dict, clicked: dict, seen_kind: dict, hostile: str) -> None:
    """Check one item page as a person sees it, click an option's label and submit. The pick: the option the
    note quotes on an oracle page (an attention check, passed), else the option at the item's number mod 4."""
    note = page.locator("section.explanation")
    question = page.locator("legend.question")
    assert note.is_visible() and question.is_visible()
    item_id = page.locator("input[name=item]").get_attribute("value")
    item = eval_items[item_id]
    assert question.inner_text() == item["question"]
    kind = note.get_attribute("data-kind")
    seen_kind[item_id] = kind
    options = page.locator("span.option-text")
    # The option text round-trips exactly (leading space, markup, quotes), shown as text and never as markup.
    assert [options.nth(k).text_content() for k in range(options.count())] == item["options"]
    assert page.locator("script").count() == 0
    shown_text = page.inner_text("body").lower()
    assert not [name for name in KIND_OF if name in shown_text], "the page names a condition (blinding)"
    assert hostile in page.inner_text("body")
    if kind == "labels":
        labels = page.locator("li.label").all_text_contents()
        assert hostile in labels and all(label.strip() for label in labels)
    if kind == "oracle":
        quoted = page.locator("p.oracle").text_content()
        choice = item["options"].index(quoted)
    else:
        choice = int(item_id.split("-")[-1]) % len(item["options"])
    page.locator(f'label[for="choice-{choice}"]').click()
    assert page.locator(f"#choice-{choice}").is_checked()
    with page.expect_navigation():
        page.get_by_role("button", name="Next").click()
    clicked[item_id] = choice


def test_a_participant_in_chromium_survives_a_killed_server(tmp_path, make_eval, hostile):
    from playwright.sync_api import sync_playwright

    eval_dir = make_eval(tmp_path / "eval", N_ITEMS)
    eval_items = {item["id"]: item for item in json.loads((eval_dir / "items.json").read_text())["items"]}
    study = tmp_path / "study"
    clicked, seen_kind, dialogs = {}, {}, []
    server, url = serve(eval_dir, study, tmp_path / "serve1.log", f"items_per_participant={PER_PARTICIPANT}")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1000, "height": 900})
            page = context.new_page()
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(url + "/")
            with page.expect_navigation():
                page.get_by_role("button", name="Start").click()
            for n in range(1, 4):
                assert page.locator("p.progress").inner_text() == f"Question {n} of {PER_PARTICIPANT}"
                answer_item(page, eval_items, clicked, seen_kind, hostile)
            fourth = page.locator("input[name=item]").get_attribute("value")  # shown, not answered
            kill(server)

            first = stored_answers(study)
            participant = next(c["value"] for c in context.cookies() if c["name"] == "pcdrl_participant")
            assert [r["item"] for r in first] == list(clicked) and fourth not in clicked
            assert {r["participant"] for r in first} == {participant}
            assert [r["choice"] for r in first] == list(clicked.values())

            server, url2 = serve(eval_dir, study, tmp_path / "serve2.log")
            # A new free port; the participant cookie is per host, so the same browser context carries on.
            assert "reopened study" in (tmp_path / "serve2.log").read_text()
            assert "3 answers so far" in (tmp_path / "serve2.log").read_text()
            page.goto(url2 + "/")
            assert f"You have answered 3 of {PER_PARTICIPANT} questions" in page.inner_text("body")
            with page.expect_navigation():
                page.get_by_role("link", name="Continue").click()
            assert page.locator("input[name=item]").get_attribute("value") == fourth
            for n in range(4, PER_PARTICIPANT + 1):
                assert page.locator("p.progress").inner_text() == f"Question {n} of {PER_PARTICIPANT}"
                answer_item(page, eval_items, clicked, seen_kind, hostile)
            assert page.url.endswith("/done")
            assert f"all {PER_PARTICIPANT} answers are saved" in page.inner_text("body")
            assert page.locator("code.code").inner_text() == participant
            other = browser.new_context().new_page()  # another browser, no cookies: the code brings them back
            other.goto(url2 + "/")
            other.fill("#code", participant)
            with other.expect_navigation():
                other.get_by_role("button", name="Resume").click()
            assert other.url.endswith("/done") and other.locator("code.code").inner_text() == participant
            browser.close()
    finally:
        kill(server)
    assert dialogs == []  # no script ever ran

    rows = stored_answers(study)
    assert len(rows) == PER_PARTICIPANT and rows[:3] == first  # the first three untouched by the restart
    assert [r["position"] for r in rows] == list(range(PER_PARTICIPANT))
    assert len({r["item"] for r in rows}) == PER_PARTICIPANT and {r["participant"] for r in rows} == {participant}
    assert {r["item"]: r["choice"] for r in rows} == clicked
    for r in rows:
        assert r["correct"] == int(r["choice"] == eval_items[r["item"]]["answer"])
        assert KIND_OF[r["condition"]] == seen_kind[r["item"]]  # the page showed this row's condition's note
        assert r["seconds"] > 0
    assert [r["answered_at"] for r in rows] == sorted(r["answered_at"] for r in rows)
    per_condition = Counter(r["condition"] for r in rows)
    assert set(per_condition) == set(KIND_OF) and max(per_condition.values()) - min(per_condition.values()) <= 1

    summary = write_study_report(study, resamples=200)
    assert (study / "report" / "report.html").is_file()
    people = summary["people"]
    assert people["n_answers"] == PER_PARTICIPANT and people["n_participants"] == 1
    assert not people["attention"]["excluded"]  # the oracle pages were answered from the note
    for condition, count in per_condition.items():
        right = sum(r["correct"] for r in rows if r["condition"] == condition)
        assert people["accuracy"][condition]["n_answers"] == count
        assert people["accuracy"][condition]["accuracy"] == pytest.approx(right / count)
    assert summary["simulated"] == {}
