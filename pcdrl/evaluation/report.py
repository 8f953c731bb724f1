"""report.html of a `pcdrl eval` folder: one self-contained page a person can open and judge the run from.

Layout only; the pieces come from pcdrl/evaluation/report_parts.py. The page is a single file (inline CSS, plots as
base64 data URIs, no script, no network) so it can be mailed, attached to a PR or opened from a cluster
copy. It is written ASCII-only (non-ASCII as character references) so the locale's encoding cannot break it.
"""
from __future__ import annotations

from pathlib import Path

from pcdrl.runtime.atomic import atomic_write_text
from pcdrl.evaluation.report_parts import Raw, esc, example_card, gain_cell, image, num, table, with_ci

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1d2330;
 background:#f6f7f9;margin:0;line-height:1.45;font-size:15px}
main{max-width:1080px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{font-size:1.6em;margin:.2em 0 .3em}h2{font-size:1.25em;margin:1.8em 0 .5em;border-bottom:1px solid #e3e6ea;
 padding-bottom:.2em}h3{font-size:1.05em;margin:1.2em 0 .4em}h4{font-size:.9em;margin:.9em 0 .3em;color:#4a5263}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:.92em}
th,td{border:1px solid #dde1e6;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f1f3f6;font-weight:600}td{font-variant-numeric:tabular-nums}
.ci{color:#7a8294;font-size:.9em}.muted{color:#7a8294}
.gain.up{color:#17692f;font-weight:600}.gain.down{color:#a32020;font-weight:600}
.verdicts{background:#fff8e1;border-left:5px solid #f0b400;padding:10px 18px;margin:1em 0;font-size:1.08em}
.verdicts li{margin:.3em 0}.verdicts ul{margin:0;padding-left:1.2em}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:.5em 0}
dl.meta dt{color:#4a5263;font-weight:600}dl.meta dd{margin:0}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #e3e6ea}figcaption{color:#7a8294;font-size:.9em}
.card{border:1px solid #dde1e6;border-radius:8px;padding:12px 18px;margin:1.2em 0;background:#fcfcfd}
.card pre{white-space:pre-wrap;word-break:break-word;background:#f1f3f6;padding:8px 10px;border-radius:4px;
 margin:.2em 0;font-size:.88em}
.options li.true{font-weight:600}.tag{background:#d8f0de;color:#17692f;border-radius:3px;padding:0 5px;
 font-size:.8em;font-weight:600;margin-left:6px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:14px;margin:.8em 0}.cols ul{margin:.2em 0;padding-left:1.2em}
.labels{border:1px solid #dde1e6;border-radius:6px;padding:2px 12px 8px}.labels.before{border-top:4px solid #999}
.labels.after{border-top:4px solid #d62728}.question{margin:.2em 0}.options{margin:.3em 0}
.judges{display:flex;flex-wrap:wrap;gap:6px 28px}
table.probs td,table.probs th{padding:2px 8px;text-align:right}table.probs td:first-child{text-align:center}
table.probs tr.true td:first-child{background:#d8f0de;font-weight:600}
td.pick{font-weight:700}td.pick.right{background:#c9ecd2}td.pick.wrong{background:#f8d6d0}
td.pick.tie{font-weight:400;background:#eceef2}
details summary{cursor:pointer;color:#2a56c6}
.evidence p{margin:.3em 0;font-size:.85em}.evidence ul{margin:.2em 0;padding-left:1.1em;font-size:.88em}
.evidence .verdict{font-weight:700;font-size:.8em;text-transform:uppercase;margin-right:4px}
.evidence li.true .verdict{color:#17692f}.evidence li.false .verdict{color:#a32020}
.evidence code{background:#f1f3f6;padding:0 3px;border-radius:3px;white-space:pre}
"""

PLOT_TITLES = {"reward_curve": "Reward during RL training (one line per seed)",
               "concept_usage": "Concept usage on the eval items, pretrained vs RL"}


def _judges(summary: dict) -> list[str]:
    """Judge names in the summary's order; falls back to the accuracy table's keys."""
    names = list(summary.get("judges") or {}) or list(summary.get("accuracy") or {})
    return [str(j) for j in names]


def _judge_head(summary: dict, judge: str) -> str:
    info = (summary.get("judges") or {}).get(judge) or {}
    role = info.get("role") if isinstance(info, dict) else None
    return f"{judge} ({role})" if role else judge


def _judge_item(name: str, info) -> str:
    """'<b>name</b>: model (role)'; `info` is {"model", "role"} or, from an older summary, the model name."""
    info = info if isinstance(info, dict) else {"model": info}
    role = f' <span class="muted">({esc(info["role"])})</span>' if info.get("role") else ""
    return f"<li><b>{esc(name)}</b>: {esc(info.get('model', ''))}{role}</li>"


def header(summary: dict) -> Raw:
    """Title and what was evaluated: runs, seeds, items, judges with their role."""
    runs = summary.get("runs") or []
    judges = summary.get("judges") or {}
    judge_items = "".join(_judge_item(j, info) for j, info in judges.items())
    rows = [("RL runs", Raw("<br>".join(esc(r) for r in runs)) if runs else None),
            ("seeds", ", ".join(str(s) for s in summary.get("seeds") or []) or None),
            ("items", " \u00b7 ".join(str(x) for x in (
                summary.get("n_items"), summary.get("split") and f"split {summary['split']}",
                summary.get("families") and "families: " + ", ".join(summary["families"])) if x) or None),
            ("judges", Raw(f'<ul style="margin:0;padding-left:1.1em">{judge_items}</ul>') if judges else None),
            ("chance", num(summary.get("chance"), 2) if "chance" in summary else None),
            ("wall time", f"{num(summary.get('wall_seconds'), 0)} s" if "wall_seconds" in summary else None)]
    meta = "".join(f"<dt>{esc(k)}</dt><dd>{v if isinstance(v, Raw) else esc(v)}</dd>" for k, v in rows if v)
    return Raw(f"<h1>PCD-RL evaluation</h1><dl class=\"meta\">{meta}</dl>")


def verdicts(summary: dict) -> Raw:
    sentences = (summary.get("controls") or {}).get("verdicts") or summary.get("verdicts") or []
    if not sentences:
        return Raw("")
    return Raw('<section class="verdicts"><b>Verdict</b><ul>'
               + "".join(f"<li>{esc(s)}</li>" for s in sentences) + "</ul></section>")


def headline(summary: dict, judges: list[str]) -> Raw:
    """Accuracy [95% CI] per row (prior ... oracle) and judge, then the RL - pretrained gain per judge."""
    acc, ci = summary.get("accuracy") or {}, summary.get("ci95") or {}
    rows = summary.get("rows") or list(dict.fromkeys(r for j in judges for r in acc.get(j, {})))
    out = ["<h2>Judge accuracy</h2>"]
    if rows and judges:
        out.append(table(["row", *[_judge_head(summary, j) for j in judges]],
                         [[r, *[with_ci(acc.get(j, {}).get(r), ci.get(j, {}).get(r)) for j in judges]] for r in rows]))
    else:
        out.append('<p class="muted">No accuracy in summary.json.</p>')
    gain = summary.get("gain") or {}
    if gain:
        out.append("<h3>Gain from RL (RL \u2212 pretrained)</h3>")
        out.append(table(["judge", "RL \u2212 pretrained [95% CI]"],
                         [[_judge_head(summary, j), gain_cell(g.get("rl_minus_pretrained"), g.get("ci95"))]
                          for j, g in gain.items() if isinstance(g, dict)]))
    return Raw("".join(out))


def label_control(title: str, data: dict, summary: dict) -> Raw:
    """Shuffled or paraphrased labels: pretrained, rl and their gain per judge, each with its CI."""
    rows = [[_judge_head(summary, j), with_ci(d.get("pretrained"), (d.get("ci95") or {}).get("pretrained")),
             with_ci(d.get("rl"), (d.get("ci95") or {}).get("rl")), gain_cell(d.get("gain"), d.get("gain_ci95"))]
            for j, d in data.items() if isinstance(d, dict)]
    return Raw(f"<h3>{esc(title)}</h3>" + table(["judge", "pretrained", "RL", "RL \u2212 pretrained"], rows))


def fidelity(data: dict) -> Raw:
    """Label fidelity before and after RL, with the per-concept scores folded away."""
    main = table(["", "before RL", "after RL", "difference"],
                 [["fidelity", with_ci(data.get("before"), data.get("before_ci95")),
                   with_ci(data.get("after"), data.get("after_ci95")),
                   gain_cell(data.get("difference"), data.get("difference_ci95"))]])
    n = data.get("n_concepts")
    per = data.get("per_concept") or []
    details = ""
    if per:
        details = ("<details><summary>per concept (" + esc(len(per)) + ")</summary>"
                   + table(["id", "label", "before", "after"],
                           [[c.get("id", ""), c.get("label", ""), num(c.get("before")), num(c.get("after"))]
                            for c in per if isinstance(c, dict)]) + "</details>")
    count = f' <span class="muted">({esc(n)} concepts)</span>' if n is not None else ""
    return Raw(f"<h3>Label fidelity{count}</h3>{main}{details}")


def formulas(summary: dict) -> Raw:
    """A formula run's formulas: mean size and share true on the held-out items per row, and the notes."""
    stats = summary.get("formulas")
    if not isinstance(stats, dict):
        return Raw("")
    rows = [[r, num(stats["mean_size"].get(r), 2), num(stats["true_share"].get(r))] for r in stats["mean_size"]]
    skipped = stats.get("skipped_items") or []
    left_out = (f'<p class="muted">{esc(len(skipped))} held-out item(s) left out: no labelled concept fired on '
                "them.</p>") if skipped else ""
    notes = "".join(f"<li>{esc(n)}</li>" for n in stats.get("notes") or [])
    return Raw(f"<h2>Formulas</h2><p>Truth: {esc(stats.get('truth'))}, on {esc(stats.get('n_items'))} items.</p>"
               + table(["row", "mean size", "share true"], rows) + left_out
               + (f'<ul class="muted">{notes}</ul>' if notes else ""))


def controls(summary: dict) -> Raw:
    data = summary.get("controls") or {}
    parts = [label_control(t, data[k], summary) for k, t in (
        ("shuffled_labels", "Shuffled labels (labels permuted across concepts)"),
        ("paraphrased_labels", "Paraphrased labels")) if isinstance(data.get(k), dict)]
    if isinstance(data.get("fidelity"), dict):
        parts.append(fidelity(data["fidelity"]))
    if not parts:
        return Raw("")
    return Raw("<h2>Controls</h2>" + "".join(parts))


def plots_section(plots: dict[str, Path | None]) -> Raw:
    """The plots that exist; a missing or unreadable one is named, not fatal."""
    figures, missing = [], []
    for key, path in (plots or {}).items():
        title = PLOT_TITLES.get(key, key.replace("_", " "))
        if path is not None and Path(path).is_file():
            figures.append(f"<figure>{image(Path(path), title)}<figcaption>{esc(title)}</figcaption></figure>")
        else:
            missing.append(title)
    if not figures and not missing:
        return Raw("")
    note = f'<p class="muted">Not available: {esc("; ".join(missing))}.</p>' if missing else ""
    return Raw("<h2>Plots</h2>" + "".join(figures) + note)


def examples_section(examples: list[dict], judges: list[str]) -> Raw:
    if not examples:
        return Raw("")
    intro = ('<p class="muted">Option probabilities per judge; the judge\'s pick is bold (green: right, red: wrong, '
             "grey: a tie), the letter of S's true answer is shaded green.</p>")
    return Raw("<h2>Examples, side by side</h2>" + intro + "".join(example_card(x, judges) for x in examples))


def render(summary: dict, examples: list[dict], plots: dict[str, Path | None]) -> str:
    """The whole page as a string (pure: reads only the plot files)."""
    judges = _judges(summary)
    body = "".join([header(summary), verdicts(summary), headline(summary, judges), formulas(summary), controls(summary),
                    plots_section(plots), examples_section(examples, judges)])
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>PCD-RL evaluation</title><style>{CSS}</style></head><body><main>{body}</main></body></html>\n")
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")


def write_report(out_dir: Path, summary: dict, examples: list[dict], plots: dict[str, Path]) -> Path:
    """Write OUT/report.html atomically and return its path."""
    path = Path(out_dir) / "report.html"
    atomic_write_text(path, render(summary, examples, plots))
    return path
