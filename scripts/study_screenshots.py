"""Screenshots of the human-study page and its report, for docs/study.md:

    docs/img/study_item.png     an item page showing a labels explanation (1000x900)
    docs/img/study_report.png   the top of STUDY/report/report.html (1280x1600)

    .venv/bin/python scripts/study_screenshots.py [--eval EVAL_DIR] [--out docs/img] [--participants N]

The study is started in a temporary folder (or --study DIR, which must be new) from --eval: by default
runs/study-bench/eval when it has an items.json, else a synthetic eval (tests/study/conftest.synthetic_eval, with
hostile text in labels and options) in the temporary folder. The eval folder is only read.

THE ANSWERS IN THE REPORT SCREENSHOT ARE SCRIPTED, NOT FROM PEOPLE. Each scripted participant posts through the
same HTTP forms as a person (stored as a person's, so the report's "People" section has numbers), and picks an
option at random with the eval's training judge's probabilities for that item and condition (seeded per
participant). The numbers therefore echo the judge, and show only what the report looks like.
"""
from __future__ import annotations

import argparse
import http.cookiejar
import importlib.util
import random
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pcdrl.study.app import PARTICIPANT_COOKIE  # noqa: E402
from pcdrl.study.config import StudyConfig  # noqa: E402
from pcdrl.study.page_reader import read_form_token, read_item_page  # noqa: E402
from pcdrl.study.report import write_study_report  # noqa: E402
from pcdrl.study.serve import StudyServer, open_study  # noqa: E402

BENCH_EVAL = ROOT / "runs" / "study-bench" / "eval"
ITEM_SIZE = (1000, 900)
REPORT_SIZE = (1280, 1600)
MAX_PARTICIPANTS = 30
"""Starts are rate-limited per address (60 a minute by default); one block is usually fewer than this."""


def synthetic_eval(folder: Path) -> Path:
    """The test suite's synthetic eval (tests/study/conftest.py), loaded by path: tests/ is not a package."""
    spec = importlib.util.spec_from_file_location("study_conftest", ROOT / "tests" / "study" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.synthetic_eval(folder, n_items=15)


def scripted_choice(store, participant: str, judge: str, rng: random.Random) -> int:
    """An option drawn with the judge's probabilities for the participant's current (item, condition)."""
    step = store.next_step(participant)  # the condition is hidden from the page, so read it from the store
    probs = step.item["judged"].get(judge, {}).get(step.condition, {}).get("probs")
    options = range(len(step.item["options"]))
    return rng.choices(options, weights=probs)[0] if probs else rng.choice(list(options))


def scripted_participant(url: str, store, judge: str, seed: int) -> int:
    """One participant through the HTTP forms, start to done; returns the number of answers posted."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def send(path: str, form: dict | None = None) -> tuple[str, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        with opener.open(urllib.request.Request(url + path, data=data), timeout=60) as response:
            return response.geturl(), response.read().decode("utf-8")

    _, html = send("/")
    final, html = send("/start", {"csrf": read_form_token(html)})
    participant = next(c.value for c in jar if c.name == PARTICIPANT_COOKIE)
    rng, answered = random.Random(seed), 0
    while not final.endswith("/done"):
        page = read_item_page(html)
        choice = scripted_choice(store, participant, judge, rng)
        final, html = send("/answer", {"csrf": page.csrf, "item": page.item, "choice": page.choices[choice]})
        answered += 1
    return answered


def item_screenshot(url: str, store, judge: str, chromium: str, path: Path, seed: int) -> int:
    """A browser participant: answers (scripted) until a page shows labels, screenshots it, then finishes;
    returns the number of answers it gave."""
    from playwright.sync_api import sync_playwright

    rng = random.Random(f"{seed}:browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": ITEM_SIZE[0], "height": ITEM_SIZE[1]})
        page = context.new_page()
        page.goto(url + "/")
        with page.expect_navigation():
            page.get_by_role("button", name="Start").click()
        participant = next(c["value"] for c in context.cookies() if c["name"] == PARTICIPANT_COOKIE)
        shot, answered = False, 0
        while not page.url.endswith("/done"):
            choice = scripted_choice(store, participant, judge, rng)
            page.locator(f'label[for="choice-{choice}"]').click()  # checked, as a person would leave it
            if not shot and page.locator("section.explanation").get_attribute("data-kind") == "labels":
                page.screenshot(path=str(path))
                shot = True
            with page.expect_navigation():
                page.get_by_role("button", name="Next").click()
            answered += 1
        browser.close()
    if not shot:
        raise SystemExit("no item page showed a labels explanation: does the eval have a labels row?")
    return answered


def report_screenshot(report: Path, chromium: str, path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": REPORT_SIZE[0], "height": REPORT_SIZE[1]})
        page.goto(report.resolve().as_uri())
        page.screenshot(path=str(path))
        browser.close()


def find_chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and Path("/usr/lib/chromium/chromium").is_file():
        path = "/usr/lib/chromium/chromium"
    if path is None:
        raise SystemExit("chromium is not installed: `sudo apt-get install chromium` (or `make browser`)")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", type=Path, default=None, help="a `pcdrl eval` folder with items.json (read only)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--study", type=Path, default=None, help="keep the study here (a new folder); default: temp")
    parser.add_argument("--participants", type=int, default=0,
                        help=f"scripted participants; default one block of the design, at most {MAX_PARTICIPANTS}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    chromium = find_chromium()
    with tempfile.TemporaryDirectory(prefix="study-screens-") as tmp:
        eval_dir = args.eval or (BENCH_EVAL if (BENCH_EVAL / "items.json").is_file() else
                                 synthetic_eval(Path(tmp) / "eval"))
        source = "a synthetic eval (tests/study/conftest.py)" if eval_dir.is_relative_to(tmp) else f"eval {eval_dir}"
        study = args.study or Path(tmp) / "study"
        if study.resolve().is_relative_to(eval_dir.resolve()):  # open_study's default is EVAL_DIR/study
            raise SystemExit(f"--study {study} is inside the eval folder {eval_dir}; this script only reads it")
        store, created = open_study(eval_dir, study, StudyConfig(seed=args.seed))
        if not created:  # its answers would be mixed with the scripted ones
            store.close()
            raise SystemExit(f"--study {study} already holds a study; give a new folder")
        judge = store.training_judge
        args.out.mkdir(parents=True, exist_ok=True)
        try:
            with StudyServer(store, quiet=True) as server:
                answers = item_screenshot(server.url, store, judge, chromium, args.out / "study_item.png", args.seed)
                count = args.participants or min(store.block_size(), MAX_PARTICIPANTS)
                answers += sum(scripted_participant(server.url, store, judge, args.seed * 1000 + n)
                              for n in range(count - 1))  # the browser participant was the first
        finally:
            store.close()
        summary = write_study_report(study, resamples=500, seed=args.seed)
        report_screenshot(study / "report" / "report.html", chromium, args.out / "study_report.png")
    print(f"{source}: {count} scripted participants ({answers} answers, not from "
          f"people), people's accuracy per condition: "
          + ", ".join(f"{c} {summary['people']['accuracy'][c]['accuracy']}" for c in summary["conditions"]))
    print(f"wrote {args.out / 'study_item.png'} and {args.out / 'study_report.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
