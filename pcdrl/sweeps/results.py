"""A sweep's results: one row per trial, read back from its run folder, as SQLite, CSV, markdown and a
Pareto plot. Rebuilt from the folders every time, so a rerun or a resumed sweep never double-counts."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
from pathlib import Path

from pcdrl.runtime.atomic import atomic_write_text

TEXT_COLUMNS = ("name", "weights", "status", "error")
INT_COLUMNS = ("seed", "exit_code", "pareto")


def _col(name: str) -> str:
    """A reward or judge name as a plain column suffix (plugins are module:function)."""
    return re.sub(r"\W", "_", name)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _explanation_size(folder: Path, k: int) -> float:
    """Mean concepts shown: minus the sparsity term's mean when it was logged, else the policy's fixed k."""
    metrics = folder / "metrics.jsonl"
    values = []
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            value = json.loads(line).get("reward/sparsity/mean") if line.strip() else None
            if value is not None:
                values.append(-value)
    return sum(values) / len(values) if values else float(k)


def _error_line(path: Path) -> str | None:
    """The last stderr line that names an error (pcdrl's one-line errors, a traceback's last line), else the last."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()] if path.is_file() else []
    chosen = [line for line in lines if "error" in line.lower()] or lines
    return chosen[-1][-300:] if chosen else None


def trial_row(trial, folder: Path, k: int) -> dict:
    summary, info = _read_json(folder / "summary.json"), _read_json(folder / "trial.json")
    status = "ok" if summary else info.get("status", "pending")
    row = {"name": trial.name, "seed": trial.seed, "weights": json.dumps(trial.weights),
           **{f"weight_{_col(t)}": w for t, w in trial.weights.items()},
           "status": status, "exit_code": 0 if summary else info.get("exit_code")}
    for kind in ("pretrained", "rl"):
        for judge, acc in summary.get(f"heldout_accuracy_{kind}", {}).items():
            row[f"acc_{kind}_{_col(judge)}"] = acc
    row.update(mean_explanation_size=_explanation_size(folder, k) if summary else None, pareto=None,
               train_seconds=summary.get("train_seconds"), wall_seconds=summary.get("wall_seconds"),
               process_seconds=info.get("seconds"), error=None if summary else _error_line(folder / "stderr.txt"))
    return row


def columns(rows: list[dict]) -> list[str]:
    """Every row's keys in a fixed order: identity, weights, status, accuracies, then sizes and times."""
    seen = list(dict.fromkeys(key for row in rows for key in row))
    tail = ["mean_explanation_size", "pareto", "train_seconds", "wall_seconds", "process_seconds", "error"]
    head = ["name", "seed", "weights", *[c for c in seen if c.startswith("weight_")], "status", "exit_code"]
    accs = [c for c in seen if c.startswith("acc_pretrained_")] + [c for c in seen if c.startswith("acc_rl_")]
    return head + accs + tail


def mark_pareto(rows: list[dict], judge: str) -> None:
    """pareto = 1 for finished trials that no other beats on both held-out accuracy (higher) and size (lower)."""
    key = f"acc_rl_{_col(judge)}"
    points = [(r, r["mean_explanation_size"], r[key]) for r in rows if r["status"] == "ok" and r.get(key) is not None]
    for row, size, acc in points:
        dominated = any(s <= size and a >= acc and (s < size or a > acc) for _, s, a in points)
        row["pareto"] = int(not dominated)


def write_sqlite(rows: list[dict], path: Path) -> None:
    """Table `trials`, written beside and renamed into place so that a reader never sees half of it."""
    cols = columns(rows)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        kinds = {c: "TEXT" if c in TEXT_COLUMNS else "INTEGER" if c in INT_COLUMNS else "REAL" for c in cols}
        kinds["name"] += " PRIMARY KEY"
        con.execute("CREATE TABLE trials (" + ", ".join(f'"{c}" {kinds[c]}' for c in cols) + ")")
        con.executemany(f"INSERT INTO trials VALUES ({', '.join('?' * len(cols))})",
                        [[row.get(c) for c in cols] for row in rows])
        con.commit()
    finally:
        con.close()
    os.replace(tmp, path)


def write_csv(rows: list[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def plot_pareto(rows: list[dict], path: Path, judge: str) -> str:
    """Held-out accuracy after RL against explanation size; returns a line saying what was written."""
    from pcdrl.evaluation.plots import new_figure, save_png

    key = f"acc_rl_{_col(judge)}"
    done = [r for r in rows if r["status"] == "ok" and r.get(key) is not None]
    if not done:
        return f"{path.name} skipped: no finished trial"
    front = sorted((r for r in done if r["pareto"]), key=lambda r: r["mean_explanation_size"])
    fig = new_figure((6.4, 4.4))
    ax = fig.add_subplot()
    ax.scatter([r["mean_explanation_size"] for r in done], [r[key] for r in done], color="0.6", label="trial")
    sizes = [r["mean_explanation_size"] for r in front]
    ax.plot(sizes, [r[key] for r in front], "o-", color="C3", label="Pareto front")
    for r, size in zip(front, sizes):
        ax.annotate(r["name"], (size, r[key]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    before = [r[f"acc_pretrained_{_col(judge)}"] for r in done if r.get(f"acc_pretrained_{_col(judge)}") is not None]
    if before:
        ax.axhline(sum(before) / len(before), color="0.3", linestyle="--", linewidth=1, label="pretrained (mean)")
    ax.set_xlabel("mean explanation size (concepts shown)")
    ax.set_ylabel(f"held-out accuracy, judge {judge} (after RL)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
    return f"Pareto plot: {path}"


def markdown_table(rows: list[dict]) -> str:
    accs = [c for c in columns(rows) if c.startswith("acc_")]
    judges = [c.removeprefix("acc_").replace("_", " ", 1) for c in accs]  # acc_rl_gemma -> "rl gemma"
    header = ["trial", "status", *judges, "size", "train s", "front"]

    def cell(value) -> str:
        return "" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        status = r["status"] if r["exit_code"] in (0, None) else f"{r['status']} (exit {r['exit_code']})"
        cells = [r["name"], status, *[cell(r.get(c)) for c in accs], cell(r["mean_explanation_size"]),
                 cell(r["train_seconds"]), "*" if r["pareto"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
