"""The two PNGs of a `pcdrl eval` folder: reward curves of the RL runs and concept usage before/after RL.

Both draw on bare `Figure` objects with an Agg canvas: no display is needed on the training machines, and
pyplot is never imported, so a caller's open figures and chosen backend are left alone (pyplot's
`matplotlib.use` would switch the backend and close them). Each PNG is written to a temp file and renamed
into place, so a report or a reader never sees half an image.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

REWARD_KEY = "reward/total/mean"
DPI = 110


def new_figure(figsize: tuple[float, float]):
    """A standalone figure on the Agg (file-only) canvas, outside pyplot's figure registry."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, out: Path) -> Path:
    """Write `fig` to `out` atomically as PNG; the figure is garbage once unreferenced, nothing to close."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=DPI, format="png")
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return out


def read_metrics(run: Path) -> list[dict]:
    """The rows of RUN/metrics.jsonl that carry a step and the total reward; other lines are skipped.

    Lines that are not JSON (a run killed mid-write leaves a torn last line) are skipped too.
    """
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row and row.get(REWARD_KEY) is not None:
            rows.append(row)
    return sorted(rows, key=lambda r: r["step"])


def plot_reward_curves(runs: list[Path], out: Path) -> Path | None:
    """Mean total reward per step, one line per run (labelled by its folder name, the seed); KL below.

    Returns None, writing nothing, when no run has a reward row (a dry run, or runs not started yet).
    """
    series = [(Path(run).name, rows) for run in runs if (rows := read_metrics(run))]
    if not series:
        return None
    with_kl = any(r.get("kl") is not None for _, rows in series for r in rows)
    if with_kl:
        fig = new_figure((7.0, 5.2))
        ax, ax_kl = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    else:
        fig = new_figure((7.0, 3.6))
        ax, ax_kl = fig.subplots(), None
    for i, (name, rows) in enumerate(series):
        color = f"C{i % 10}"
        ax.plot([r["step"] for r in rows], [r[REWARD_KEY] for r in rows], color=color, label=name, linewidth=1.4)
        if ax_kl is not None:
            kl = [r for r in rows if r.get("kl") is not None]
            ax_kl.plot([r["step"] for r in kl], [r["kl"] for r in kl], color=color, linewidth=1.2)
    ax.set_ylabel("reward (total, mean)")
    ax.set_title("RL training reward per step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="run", title_fontsize=8)
    if ax_kl is not None:
        ax_kl.set_ylabel("KL to pretrained")
        ax_kl.grid(alpha=0.3)
        ax_kl.set_xlabel("step")
    else:
        ax.set_xlabel("step")
    fig.tight_layout()
    return save_png(fig, out)


def _tick(cid: str, label: str | None, width: int = 40) -> str:
    text = f"{cid}: {label}" if label else str(cid)
    return text if len(text) <= width else text[: width - 1] + "…"


def plot_concept_usage(usage: dict[str, dict[str, int]], labels: dict[str, str], out: Path, top: int = 20) -> Path:
    """Horizontal bars of how many eval items use each concept, pretrained vs RL, for the `top` concepts.

    Concepts are ranked by combined usage, most used at the top; ticks read "id: label" (cut to ~40
    characters) so a reader sees which concepts RL moved toward or away from.
    """
    before = {str(k): v for k, v in usage.get("pretrained", {}).items()}
    after = {str(k): v for k, v in usage.get("rl", {}).items()}
    ids = sorted(set(before) | set(after), key=lambda c: (-(before.get(c, 0) + after.get(c, 0)), c))[:top]
    fig = new_figure((7.6, max(2.4, 0.32 * len(ids) + 1.3)))
    ax = fig.subplots()
    if ids:
        ys = list(range(len(ids)))[::-1]  # most used concept on top
        h = 0.4
        ax.barh([y + h / 2 for y in ys], [before.get(c, 0) for c in ids], h, color="0.6", label="pretrained")
        ax.barh([y - h / 2 for y in ys], [after.get(c, 0) for c in ids], h, color="C3", label="RL")
        ax.set_yticks(ys, [_tick(c, labels.get(c)) for c in ids], fontsize=8)
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.text(0.5, 0.5, "no concept usage recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("eval items whose explanation holds the concept")
    ax.set_title(f"Top {len(ids)} concepts by usage, pretrained vs RL")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, out)
