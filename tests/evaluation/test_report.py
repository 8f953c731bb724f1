"""report.html and the eval plots: escaping, missing keys, embedded images, and a real headless-browser render."""
import base64
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from pcdrl.evaluation.plots import plot_concept_usage, plot_reward_curves
from pcdrl.evaluation.report import render, write_report

XSS = "<script>alert(1)</script> & friends"
VERDICT = "No gain: RL \u2212 pretrained is -0.02 [-0.06, 0.03] for smollm2."
WIDTH, HEIGHT = 1280, 2000


def make_summary() -> dict:
    """A summary.json as `pcdrl eval` writes it (see the eval folder contract), two judges, all controls on."""
    judges = {"smollm2": {"model": "smollm2-135m-instruct", "role": "training"},
              "gemma": {"model": "gemma3-270m", "role": "held-out"}}
    rows = ["prior", "random", "pretrained", "rl", "oracle"]
    acc = {"smollm2": dict(zip(rows, [0.25, 0.21, 0.35, 0.33, 1.0])),
           "gemma": dict(zip(rows, [0.25, 0.24, 0.31, 0.38, 0.97]))}
    ci = {j: {r: [max(0.0, v - 0.05), min(1.0, v + 0.05)] for r, v in a.items()} for j, a in acc.items()}
    control = {"smollm2": {"pretrained": 0.22, "rl": 0.20, "ci95": {"pretrained": [0.15, 0.29], "rl": [0.13, 0.27]},
                           "gain": -0.02, "gain_ci95": [-0.08, 0.04]},
               "gemma": {"pretrained": 0.24, "rl": 0.27, "ci95": {"pretrained": [0.17, 0.31], "rl": [0.2, 0.34]},
                         "gain": 0.03, "gain_ci95": [0.01, 0.05]}}
    return {
        "runs": ["runs/grpo/seed0", "runs/grpo/seed1"], "seeds": [0, 1], "n_items": 118,
        "families": ["continuation"], "split": "test", "judges": judges, "rows": rows, "accuracy": acc, "ci95": ci,
        "gain": {"smollm2": {"rl_minus_pretrained": -0.02, "ci95": [-0.06, 0.03]},
                 "gemma": {"rl_minus_pretrained": 0.07, "ci95": [0.02, 0.12]}},
        "controls": {
            "shuffled_labels": control, "paraphrased_labels": control,
            "fidelity": {"n_concepts": 3, "before": 0.58, "before_ci95": [0.5, 0.66], "after": 0.55,
                         "after_ci95": [0.47, 0.63], "difference": -0.03, "difference_ci95": [-0.09, 0.03],
                         "per_concept": [{"id": 17, "label": 'the words "of", "and"', "before": 0.6, "after": 0.5},
                                         {"id": 3, "label": XSS, "before": 0.5, "after": 0.55},
                                         {"id": 9, "label": "numbers", "before": 0.64, "after": 0.6}]},
            "verdicts": [VERDICT, "Gain on the held-out judge gemma: +0.07 [0.02, 0.12]."],
        },
        "concept_usage": {"pretrained": {"17": 40, "3": 31, "9": 12}, "rl": {"17": 22, "3": 45, "5": 19}},
        "labels": {"17": 'the words "of", "and"', "3": XSS, "9": "numbers", "5": "sentence-final punctuation"},
        "chance": 0.25, "wall_seconds": 321.0,
    }


def make_examples() -> list[dict]:
    """Three examples; the second shows the hostile label under RL."""
    out = []
    for i, rl_label in enumerate(["closing a quoted phrase", XSS, "years and dates"]):
        options = [f"option text {i}-{k}" for k in range(4)]
        probs = {j: {"prior": [0.25] * 4, "random": [0.3, 0.2, 0.3, 0.2], "pretrained": [0.1, 0.5, 0.3, 0.1],
                     "rl": [0.1, 0.2, 0.6 - 0.1 * n, 0.1 + 0.1 * n], "oracle": [0.02, 0.02, 0.94, 0.02]}
                 for n, j in enumerate(["smollm2", "gemma"])}
        out.append({"id": f"cont-00{40 + i}", "family": "continuation",
                    "question": "Which text does the model write next?", "options": options, "answer": 2,
                    "text": f"Once upon a time <b>{i}</b> the cat",
                    "behaviour": " sat on the mat.", "labels": {"pretrained": ["the words \"of\", \"and\"", "numbers"],
                                                               "rl": [rl_label, "sentence-final punctuation"]},
                    "probs": probs})
    return out


def _spot(position: int, token: str, value: float, rank: int) -> dict:
    return {"position": position, "token": token, "value": value, "rank": rank}


def make_formula_example() -> dict:
    """A formula run's example (as `pcdrl eval` writes it): the formulas, and per row the evidence for each literal;
    a hostile label and a hostile token among them, and a third seed's formula (row rl/1)."""
    python = {"concept": 3, "label": "Python", "negated": False, "fired": True, "true": True,
              "positions": [_spot(p, f" tok{p}", 2.5, 1) for p in range(10, 20)], "closest": _spot(10, " tok10", 2.5, 1)}
    hostile = {"concept": 7, "label": XSS, "negated": True, "fired": False, "true": True, "positions": [],
               "closest": _spot(14, "</code><script>x</script>", 0.731, 9)}
    lord = {"concept": 9, "label": "LORD", "negated": True, "fired": True, "true": False,
            "positions": [_spot(12, "\n", 1.25, 2)], "closest": _spot(12, "\n", 1.25, 2)}
    evidence = {
        "pretrained": {"formula": "c3", "text": "'Python'", "true": True, "k": 4, "n_positions": 11,
                       "literals": [python]},
        "rl": {"formula": "c3 AND NOT c7", "text": f"'Python' AND NOT '{XSS}'", "true": True, "k": 4,
               "n_positions": 11, "literals": [python, hostile]},
        "rl/1": {"formula": "c3 OR NOT c9", "text": "'Python' OR NOT 'LORD'", "true": True, "k": 4, "n_positions": 11,
                 "literals": [python, lord]},
    }
    example = make_examples()[0]
    formulas = {"pretrained": evidence["pretrained"]["text"], "rl": evidence["rl"]["text"]}
    return {**example, "id": "cont-0099", "labels": {r: [t] for r, t in formulas.items()}, "formulas": formulas,
            "evidence": evidence}


def write_metrics(run, steps: int = 6, with_reward: bool = True, seed: int = 0) -> None:
    """RUN/metrics.jsonl as the trainer writes it, plus a line without a step and a torn last line."""
    run.mkdir(parents=True)
    lines = [{"event": "start"}]  # no step: skipped
    for s in range(1, steps + 1):
        row = {"step": s, "kl": 0.01 * s * (1 + 0.3 * seed)}
        if with_reward:
            row["reward/total/mean"] = -3.3 + 2.5 * (1 - 0.9 ** s) + 0.3 * seed + 0.2 * ((s * (7 + seed)) % 5 - 2) / 2
        lines.append(row)
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{torn")


@pytest.fixture
def report(tmp_path):
    """A full eval folder: two seeds' metrics, both plots, summary, examples and report.html."""
    runs = [tmp_path / "runs" / f"seed{s}" for s in (0, 1)]
    for seed, run in enumerate(runs):
        write_metrics(run, seed=seed)
    out = tmp_path / "eval"
    summary, examples = make_summary(), [*make_examples(), make_formula_example()]
    plots = {"reward_curve": plot_reward_curves(runs, out / "plots" / "reward_curve.png"),
             "concept_usage": plot_concept_usage(summary["concept_usage"], summary["labels"],
                                                 out / "plots" / "concept_usage.png")}
    return write_report(out, summary, examples, plots), plots


def test_plots_are_pngs_and_atomic(report):
    path, plots = report
    for png in plots.values():
        assert png is not None and png.is_file()
        with Image.open(png) as im:
            assert im.format == "PNG" and im.width > 300
    assert not [p for p in plots["reward_curve"].parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_reward_curves_none_without_reward_rows(tmp_path):
    run = tmp_path / "seed0"
    write_metrics(run, with_reward=False)
    out = tmp_path / "plots" / "reward_curve.png"
    assert plot_reward_curves([run, tmp_path / "missing"], out) is None
    assert not out.exists()


def test_page_escapes_everything(report):
    html = report[0].read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends" in html
    assert "<b>0</b>" not in html and "&lt;b&gt;0&lt;/b&gt;" in html  # S's input is text, not markup
    assert html.isascii()


def _card(html: str, item_id: str) -> str:
    start = html.index(item_id)
    return html[start: html.index("</article>", start)]


def test_formula_cards_show_the_evidence_for_each_literal(report):
    html = report[0].read_text()
    card = _card(html, "cont-0099")
    assert card.count('<div class="evidence">') == 3  # pretrained, rl, and rl/1 folded under the other seeds
    assert "<h4>Pretrained formula</h4>" in card and "RL formulas of the other seeds (1)" in card
    # A true literal lists where it fired, eight positions at most on the page (examples.jsonl has them all).
    assert ("<b>&#x27;Python&#x27;</b> <span class=\"muted\">(c3)</span>: in the top-4 at 10 of 11 read positions: "
            "token 10 <code>&quot; tok10&quot;</code> (2.500, rank 1)") in card
    assert "token 17 <code>" in card and "token 18 <code>" not in card and "and 2 more" in card
    # A true NOT: absent everywhere, with how close it came; its label and token are text, not markup.
    assert ('<li class="true"><span class="verdict">true</span> <b>NOT &#x27;&lt;script&gt;alert(1)&lt;/script&gt; '
            "&amp; friends&#x27;</b>") in card
    assert ("in the top-4 at none of 11 read positions; closest: token 14 <code>&quot;&lt;/code&gt;&lt;script&gt;"
            "x&lt;/script&gt;&quot;</code> (0.731, rank 9)") in card
    # A false NOT shows where its concept was selected; a newline token stays visible as \n.
    assert ('<li class="false"><span class="verdict">false</span> <b>NOT &#x27;LORD&#x27;</b>' in card
            and "token 12 <code>&quot;\\n&quot;</code> (1.250, rank 2)" in card)


def test_concept_cards_are_unchanged_by_the_evidence_view(report):
    html = report[0].read_text()
    card = _card(html, "cont-0040")
    assert "<h4>Pretrained labels</h4>" in card and "<h4>RL labels</h4>" in card
    assert "evidence" not in card and "other seeds" not in card
    assert render(make_summary(), make_examples(), {}).count('class="evidence"') == 0


def test_images_embedded_and_self_contained(report):
    html = report[0].read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 2
    assert all(base64.b64decode(x).startswith(b"\x89PNG") for x in images)
    assert "http://" not in html and "https://" not in html


def test_missing_keys_still_render(tmp_path):
    summary = make_summary()
    del summary["controls"], summary["gain"], summary["wall_seconds"]
    summary["judges"] = {"smollm2": summary["judges"]["smollm2"]}
    summary["accuracy"] = {"smollm2": summary["accuracy"]["smollm2"]}
    examples = make_examples()[:1]
    page = render(summary, examples, {"reward_curve": None, "concept_usage": tmp_path / "nope.png"})
    assert "Judge accuracy" in page and "Controls" not in page and "Not available" in page
    assert "PCD-RL evaluation" in render({}, [], {})
    assert "(none)" in render({}, [{"labels": {}, "probs": {"x": {"rl": [None, "a"]}}, "options": ["a", "b"]}], {})


def _chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: install Debian's `chromium` package "
                    "(`sudo apt-get install chromium`, or `make browser`) to run the rendered-report test")
    return path


def _run_chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """Headless chromium with its profile, cache and HOME inside tmp_path, so it writes nothing else."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache")}
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--no-first-run", "--disable-extensions", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True)


def test_chromium_renders_report(report, tmp_path):
    path = report[0]
    shot = tmp_path / "shot.png"
    _run_chromium(tmp_path, f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", path.as_uri())
    assert shot.is_file()
    with Image.open(shot) as im:
        assert im.size == (WIDTH, HEIGHT)
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        grey = rgb.convert("L").histogram()
    inked = sum(grey[:235]) / sum(grey)  # text, borders, plots; a blank or unstyled page has next to none
    assert len(colours) > 200 and inked > 0.02, f"screenshot looks blank: {len(colours)} colours, {inked:.1%} inked"

    dom = _run_chromium(tmp_path, path.as_uri(), "--dump-dom").stdout
    assert "sentence-final punctuation" in dom and "closing a quoted phrase" in dom  # RL labels
    assert "No gain: RL" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<script>alert" not in dom
    assert "in the top-4 at none of 11 read positions" in dom  # the evidence under a formula, as rendered


def test_plots_leave_pyplot_alone(tmp_path):
    """The plots never import pyplot, so a caller's backend and open figures are untouched."""
    code = ("import sys, pathlib; from pcdrl.evaluation.plots import plot_concept_usage; "
            "plot_concept_usage({'rl': {'1': 3}}, {'1': 'x'}, pathlib.Path(sys.argv[1])); "
            "assert 'matplotlib.pyplot' not in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "u.png")], check=True, timeout=120)
    assert (tmp_path / "u.png").is_file()
