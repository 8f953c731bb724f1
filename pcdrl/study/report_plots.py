"""The two PNGs of `pcdrl study report`: people's accuracy per condition beside each judge's, and each judge's
p(true option) against people's accuracy cell by cell. Drawn on bare Agg figures (pcdrl/evaluation/plots.py);
a plot with nothing to draw is not written (None)."""
from __future__ import annotations

from pathlib import Path

from pcdrl.evaluation.plots import new_figure, save_png
from pcdrl.study.report_stats import display_name


def plot_accuracy(summary: dict, out: Path) -> Path | None:
    """Grouped bars per condition: people (with their 95% CI) and each judge's accuracy on the same answers."""
    people = summary.get("people") or {}
    table = people.get("accuracy") or {}
    conditions = [c for c in summary["conditions"] if (table.get(c) or {}).get("accuracy") is not None]
    if not conditions:
        return None
    judges = [j for j, a in (summary.get("agreement") or {}).items() if any(a["accuracy"].get(c) is not None
                                                                               for c in conditions)]
    series = [("people", [table[c]["accuracy"] for c in conditions])]
    series += [(f"judge {j}", [summary["agreement"][j]["accuracy"].get(c) for c in conditions]) for j in judges]
    width = 0.8 / len(series)
    fig = new_figure((max(5.0, 1.3 * len(conditions) + 2.5), 3.8))
    ax = fig.subplots()
    for s, (name, values) in enumerate(series):
        xs = [i - 0.4 + width * (s + 0.5) for i in range(len(conditions))]
        heights = [v if v is not None else 0.0 for v in values]
        if s == 0:  # people carry the error bars: the judges' numbers are the eval's, on the same cells
            ci = [table[c]["ci95"] or [v, v] for c, v in zip(conditions, heights)]
            errors = [[max(0.0, v - lo) for v, (lo, _) in zip(heights, ci)],
                      [max(0.0, hi - v) for v, (_, hi) in zip(heights, ci)]]
            ax.bar(xs, heights, width, yerr=errors, capsize=3, color="C0", label=name)
        else:
            ax.bar(xs, heights, width, color=f"C{s}", alpha=0.75, label=name)
    ax.set_xticks(range(len(conditions)), [display_name(c) for c in conditions], fontsize=8, rotation=15)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(f"People vs judges on the same questions ({people.get('n_participants', 0)} people, 95% CI)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, out)


def plot_agreement(points: dict[str, list[dict]], correlations: dict[str, dict], out: Path,
                   conditions: list[str] | None = None) -> Path | None:
    """One panel per judge: its p(true option) against people's accuracy in each (item, condition) cell; marker
    area grows with the answers in the cell, colour is the condition (in the order of `conditions`)."""
    judges = [j for j, cells in points.items() if cells]
    if not judges:
        return None
    seen = {p["condition"] for j in judges for p in points[j]}
    conditions = [c for c in conditions or [] if c in seen] + sorted(seen - set(conditions or []))
    colour = {c: f"C{n % 10}" for n, c in enumerate(conditions)}
    fig = new_figure((4.2 * len(judges) + 0.6, 4.0))
    axes = fig.subplots(1, len(judges), squeeze=False)[0]
    for ax, judge in zip(axes, judges):
        for c in conditions:
            cells = [p for p in points[judge] if p["condition"] == c]
            if cells:
                ax.scatter([p["p_true"] for p in cells], [p["accuracy"] for p in cells],
                           s=[12 + 10 * p["n"] for p in cells], color=colour[c], alpha=0.6, label=display_name(c))
        r = (correlations.get(judge) or {}).get("r")
        ax.set_title(f"{judge}: r = {r:.2f}" if r is not None else f"{judge}: r undefined", fontsize=10)
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("judge p(true option)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("people's accuracy in the cell")
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_png(fig, out)
