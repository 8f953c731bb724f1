"""`pcdrl study report STUDY`: what people answered, against the judges and the eval, written to STUDY/report/.

    report/summary.json    every number (pcdrl/study/report_stats.py: study_summary)
    report/table.md        the same as markdown tables (what the CLI prints)
    report/plots/*.png     accuracy per condition, people vs judges; judge p(true option) vs people per cell
    report/report.html     a "Human study" section, then the eval's own report re-rendered from its folder

The eval folder is only read, never written: the study may sit on a copy of it, or it may be gone (the page says
so and shows the study alone).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pcdrl.evaluation.report import (CSS, controls, examples_section, formulas, header, headline, plots_section,
                                     verdicts)
from pcdrl.evaluation.report_parts import Raw, esc, gain_cell, image, num, table, with_ci
from pcdrl.runtime.atomic import atomic_write_json, atomic_write_text
from pcdrl.study.report_plots import plot_accuracy, plot_agreement
from pcdrl.study.report_stats import PEOPLE, attention_filter, by_agent, cell_points, study_summary
from pcdrl.study.store import StudyStore

DASH = "\u2013"
MINUS = "\u2212"


def _f(value, signed: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _ci(pair, signed: bool = False) -> str:
    return f"[{_f(pair[0], signed)}, {_f(pair[1], signed)}]" if pair else ""


def _name(summary: dict, condition: str) -> str:
    return (summary.get("display_names") or {}).get(condition, condition)


def _judge_head(summary: dict, judge: str) -> str:
    role = (summary.get("judges") or {}).get(judge)
    return f"{judge} ({role})" if role else judge


def _vs_eval_gap(vs_eval: dict) -> tuple[float | None, list[str]]:
    """Largest |simulated - eval| over the conditions without ties at the top, and the conditions with ties."""
    clean = [abs(row["difference"]) for row in vs_eval.values() if not row["tied_cells"]]
    return (max(clean) if clean else None), [c for c, row in vs_eval.items() if row["tied_cells"]]


def headlines(summary: dict) -> list[str]:
    """The findings in sentences: people's gain, each judge's agreement, each simulated agent's match."""
    people, out = summary["people"], []
    if not people.get("n_answers"):
        out.append(people.get("note", "No answers from people yet."))
    else:
        g = people.get("gain")
        if g:
            acc = people["accuracy"]
            out.append(f"People: {_name(summary, g['rl'])} {_f(acc[g['rl']]['accuracy'])} vs "
                       f"{_name(summary, g['pretrained'])} {_f(acc[g['pretrained']]['accuracy'])}; "
                       f"{_name(summary, g['rl'])} {MINUS} {_name(summary, g['pretrained'])} "
                       f"{_f(g['difference'], True)} {_ci(g['ci95'], True)} (95% CI over people and items).")
        for judge, a in summary["agreement"].items():
            order = ("orders the conditions as people do" if not a["disagreements"]
                     else f"orders differently ({_flips(summary, a)})")
            out.append(f"Judge {_judge_head(summary, judge)}: r = {_f(a['r'])} {_ci(a['ci95'])} with people over "
                       f"{a['n_cells']} cells; Kendall tau {_f(a['kendall_tau'])}, {order}.")
    for agent, group in summary["simulated"].items():
        if not group.get("vs_eval"):
            out.append(f"{agent}: not one of the eval's judges, so it is not checked against the eval.")
            continue
        gap, tied = _vs_eval_gap(group["vs_eval"])
        ties = (f"; {', '.join(_name(summary, c) for c in tied)} had ties at the top (a random tie-break)"
                if tied else "")
        out.append(f"Simulated {agent} vs pcdrl eval on the same cells: largest difference {_f(gap)} where the "
                   f"judge has no ties{ties}.")
    return out


def _md(cells: list) -> str:
    """A markdown table row; a '|' inside a cell (an agent's name, say) is escaped so it cannot split the row."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _flips(summary: dict, agreement: dict) -> str:
    """The condition pairs a judge orders against people, e.g. 'people: rl > pretrained'."""
    return "; ".join(f"people: {_name(summary, d['people_higher'])} > {_name(summary, d['judge_higher'])}"
                     for d in agreement["disagreements"])


def _counts(group: dict) -> str:
    attention = group.get("attention") or {}
    left = len(attention.get("excluded") or [])
    return (f"{group.get('n_participants', 0)} participant(s), {group.get('n_answers', 0)} answers, "
            f"{left} left out by attention checks, {group.get('n_started', 0)} started")


def study_table(summary: dict) -> str:
    """Markdown: people per condition beside each judge, the gain, the agreement, then the simulated agents."""
    people, judges = summary["people"], list(summary["agreement"])
    blocks = []
    if people.get("n_answers"):
        lines = [f"Human study, people: {_counts(people)}; 95% CIs over participants and items", "",
                 _md(["condition", "people [95% CI]", "n", "median s", *[_judge_head(summary, j) for j in judges]]),
                 _md(["---"] * (4 + len(judges)))]
        for c in summary["conditions"]:
            row = people["accuracy"][c]
            lines.append(_md([_name(summary, c), f"{_f(row['accuracy'])} {_ci(row['ci95'])}", row["n_answers"],
                              _f(row["median_seconds"]), *[_f(summary["agreement"][j]["accuracy"].get(c))
                                                            for j in judges]]))
        if people.get("gain"):
            g = people["gain"]
            lines.append(_md([f"**{_name(summary, g['rl'])} {MINUS} {_name(summary, g['pretrained'])}**",
                              f"{_f(g['difference'], True)} {_ci(g['ci95'], True)}", *[""] * (2 + len(judges))]))
        blocks.append("\n".join(lines))
        if judges:
            lines = ["Agreement with the judges: judge p(true option) vs people's accuracy per (item, condition) cell",
                     "", _md(["judge", "r [95% CI]", "cells", "Kendall tau", "ordered differently"]), _md(["---"] * 5)]
            for j, a in summary["agreement"].items():
                lines.append(_md([_judge_head(summary, j), f"{_f(a['r'])} {_ci(a['ci95'])}", a["n_cells"],
                                  _f(a["kendall_tau"]), _flips(summary, a) or "none"]))
            blocks.append("\n".join(lines))
    else:
        blocks.append(people.get("note", "No answers from people yet."))
    if summary["simulated"]:
        lines = ["Simulated participants vs pcdrl eval on the same cells", "",
                 _md(["agent", "condition", "simulated [95% CI]", "eval", "difference", "answers", "tied cells",
                      "top-choice share"]), _md(["---"] * 8)]
        for agent, group in summary["simulated"].items():
            for c in summary["conditions"]:
                row, vs = group["accuracy"][c], (group.get("vs_eval") or {}).get(c) or {}
                lines.append(_md([agent, _name(summary, c), f"{_f(row['accuracy'])} {_ci(row['ci95'])}",
                                  _f(vs.get("eval_accuracy")), _f(vs.get("difference"), True),
                                  vs.get("n_answers", row["n_answers"]), vs.get("tied_cells", DASH),
                                  _f(vs.get("top_choice_share"))]))
        blocks.append("\n".join(lines))
    blocks.append("\n".join(f"- {s}" for s in headlines(summary)))
    return "\n\n".join(blocks)


# --- the page --------------------------------------------------------------------------------------------


def _attention_html(group: dict) -> str:
    attention = group.get("attention") or {}
    if not attention:
        return ""
    excluded = attention.get("excluded") or []
    listed = ("<details><summary>left out (" + esc(len(excluded)) + ")</summary>"
              + table(["participant", "attention accuracy", "checks"],
                      [[e["participant"], num(e["attention_accuracy"]), e["n_checks"]] for e in excluded])
              + "</details>") if excluded else ""
    unchecked = (f" {esc(attention['n_unchecked'])} participant(s) answered no attention item yet and are kept."
                 if attention.get("n_unchecked") else "")
    return f'<p class="muted">{esc(attention.get("note", ""))}.{unchecked}</p>{listed}'


def _people_html(summary: dict) -> str:
    people, judges = summary["people"], list(summary["agreement"])
    if not people.get("n_answers"):
        return f"<h2>People</h2><p>{esc(people.get('note', 'No answers from people yet.'))}</p>"
    rows = [[_name(summary, c), with_ci(r["accuracy"], r["ci95"]), r["n_answers"], r["n_participants"],
             num(r["median_seconds"], 1), *[num(summary["agreement"][j]["accuracy"].get(c)) for j in judges]]
            for c, r in ((c, people["accuracy"][c]) for c in summary["conditions"])]
    out = [f"<h2>People</h2><p>{esc(_counts(people))}. Accuracy with its 95% CI over participants and items; "
           "each judge's accuracy on the same answers (the eval's scores on those questions).</p>",
           table(["condition", "people [95% CI]", "answers", "people", "median seconds",
                  *[f"judge {_judge_head(summary, j)}" for j in judges]], rows), _attention_html(people)]
    g = people.get("gain")
    if g:
        out.append(f"<h3>Gain from RL for people ({esc(_name(summary, g['rl']))} {MINUS} "
                   f"{esc(_name(summary, g['pretrained']))})</h3>")
        out.append(table(["", "difference [95% CI]"], [["people", gain_cell(g["difference"], g["ci95"])]]))
    if judges:
        out.append("<h3>Agreement with the judges</h3><p class=\"muted\">Per (item, condition) cell people answered: "
                   "the judge's probability of the true option against people's accuracy in the cell (CI: items "
                   "resampled). Kendall tau compares the order of the conditions by accuracy.</p>")
        out.append(table(["judge", "r [95% CI]", "cells", "Kendall tau", "ordered differently"], [
            [_judge_head(summary, j), with_ci(a["r"], a["ci95"]), a["n_cells"], num(a["kendall_tau"]),
             _flips(summary, a) or "none"]
            for j, a in summary["agreement"].items()]))
    return "".join(out)


def _simulated_html(summary: dict) -> str:
    if not summary["simulated"]:
        return ""
    out = ["<h2>Simulated participants vs pcdrl eval</h2><p class=\"muted\">A simulated participant is a judge "
           "answering through the study page. On the cells it answered, its accuracy should equal the eval's (the "
           "expected accuracy of the judge's scores), except where the judge's scores tie at the top and the "
           "choice is a random tie-break.</p>"]
    for agent, group in summary["simulated"].items():
        vs = group.get("vs_eval") or {}
        out.append(f"<h3>{esc(agent)}</h3><p class=\"muted\">{esc(_counts(group))}</p>")
        out.append(table(["condition", "simulated [95% CI]", "eval, same cells", "difference", "answers",
                          "tied cells", "top-choice share"],
                         [[_name(summary, c), with_ci(group["accuracy"][c]["accuracy"], group["accuracy"][c]["ci95"]),
                           num((vs.get(c) or {}).get("eval_accuracy")),
                           with_ci((vs.get(c) or {}).get("difference"), None, signed=True),
                           group["accuracy"][c]["n_answers"], (vs.get(c) or {}).get("tied_cells", DASH),
                           num((vs.get(c) or {}).get("top_choice_share"))] for c in summary["conditions"]]))
    return "".join(out)


def study_section(summary: dict, plots: dict[str, Path | None]) -> Raw:
    study = summary.get("study") or {}
    changed = " (its items.json has changed since the study started)" if study.get("eval_items_changed") else ""
    meta = [("study", study.get("folder")), ("eval", f"{study.get('eval_dir')}{changed}"), ("items", summary.get("n_items")),
            ("conditions", ", ".join(_name(summary, c) for c in summary["conditions"])),
            ("judges", ", ".join(_judge_head(summary, j) for j in summary.get("judges") or {})),
            ("bootstrap", f"{summary['resamples']} resamples, seed {summary['seed']}")]
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in meta if v not in (None, ""))
    findings = "".join(f"<li>{esc(s)}</li>" for s in headlines(summary))
    figures = [(k, p) for k, p in plots.items() if p is not None and Path(p).is_file()]
    titles = {"accuracy": "People vs judges, accuracy per condition",
              "agreement": "Judge p(true option) vs people's accuracy, per cell"}
    plot_html = "".join(f"<figure>{image(Path(p), titles.get(k, k))}<figcaption>{esc(titles.get(k, k))}"
                        "</figcaption></figure>" for k, p in figures)
    return Raw(f"<h1>Human study: {esc(study.get('title', ''))}</h1><dl class=\"meta\">{rows}</dl>"
               f'<section class="verdicts"><b>Findings</b><ul>{findings}</ul></section>'
               + _people_html(summary) + (f"<h2>Plots</h2>{plot_html}" if plot_html else "")
               + _simulated_html(summary))


def _read_examples(path: Path) -> list[dict]:
    examples = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            examples.append(row)
    return examples


def eval_section(eval_dir: Path | None) -> Raw:
    """The eval's own report body, from its summary.json, examples.jsonl and plots; a note if it cannot be read."""
    gone = '<h2>The eval</h2><p class="muted">{}</p>'
    if eval_dir is None or not (Path(eval_dir) / "summary.json").is_file():
        return Raw(gone.format(esc(f"The eval folder {eval_dir} (or its summary.json) is gone, so only the study "
                                   "is shown; the study's items and judge answers were frozen into it.")))
    try:
        summary = json.loads((Path(eval_dir) / "summary.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        return Raw(gone.format(esc(f"{eval_dir}/summary.json could not be read ({err}); only the study is shown.")))
    judges = [str(j) for j in (summary.get("judges") or summary.get("accuracy") or {})]
    plots = {k: p for k in ("reward_curve", "concept_usage") if (p := Path(eval_dir) / "plots" / f"{k}.png").is_file()}
    return Raw("".join([header(summary), verdicts(summary), headline(summary, judges), formulas(summary),
                        controls(summary), plots_section(plots),
                        examples_section(_read_examples(Path(eval_dir) / "examples.jsonl"), judges)]))


def render(summary: dict, plots: dict[str, Path | None], eval_dir: Path | None) -> str:
    body = study_section(summary, plots) + '<hr style="margin:3em 0">' + eval_section(eval_dir)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>PCD-RL human study</title><style>{CSS}</style></head><body><main>{body}</main></body></html>\n")
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _eval_state(meta: dict) -> dict:
    """Where the eval folder is, and whether its items.json is still the one the study froze."""
    folder = Path(meta["eval_dir"]) if meta.get("eval_dir") else None
    items = folder / "items.json" if folder else None
    found = bool(folder and (folder / "summary.json").is_file())
    changed = None
    if items is not None and items.is_file() and meta.get("eval_sha256"):
        changed = hashlib.sha256(items.read_bytes()).hexdigest() != meta["eval_sha256"]
    return {"dir": str(folder) if folder else None, "found": found, "items_changed": changed}


def write_study_report(study_dir: Path, resamples: int = 2000, seed: int = 0) -> dict:
    """Compute the study's summary and write STUDY/report/ (see the module docstring); returns the summary."""
    study_dir = Path(study_dir)
    store = StudyStore(study_dir)
    try:
        answers, participants = store.answers(), store.participants()
        cfg, frozen, meta = store.config, store.frozen, dict(store.meta)
    finally:
        store.close()
    summary = study_summary(answers, participants, frozen, cfg.attention_condition, cfg.attention_min_accuracy,
                            resamples, seed)
    state = _eval_state(meta)
    summary["study"] = {"folder": str(study_dir), "title": cfg.title, "eval_dir": state["dir"],
                        "eval_sha256": meta.get("eval_sha256"), "eval_found": state["found"],
                        "eval_items_changed": state["items_changed"]}
    out = study_dir / "report"
    kept, _ = attention_filter(by_agent(answers).get(PEOPLE, []), cfg.attention_condition,
                               cfg.attention_min_accuracy, summary["conditions"])
    by_id = {item["id"]: item for item in frozen["items"]}
    points = {j: cell_points(kept, by_id, j) for j in summary["agreement"]}
    plots = {"accuracy": plot_accuracy(summary, out / "plots" / "accuracy.png"),
             "agreement": plot_agreement(points, summary["agreement"], out / "plots" / "agreement.png",
                                         summary["conditions"])}
    for key, path in plots.items():  # a plot with no data this time must not leave last run's PNG behind
        if path is None:
            (out / "plots" / f"{key}.png").unlink(missing_ok=True)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "table.md", study_table(summary) + "\n")
    atomic_write_text(out / "report.html", render(summary, plots, Path(state["dir"]) if state["dir"] else None))
    return summary
