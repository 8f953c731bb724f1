"""Optional fan-out of training metrics to wandb and tensorboard (`report_to`).

RunDir always writes metrics.jsonl and that file stays the record of a run. Users coming
from trl/transformers expect `report_to: [wandb, tensorboard]` to also give them curves in
those tools, so Reporter sends the same scalars there. Neither library is imported unless
it is asked for. wandb runs offline unless an API key is set (or the user sets WANDB_MODE),
so a run never waits on the network; its files land in the run folder and its run id is
kept there too, so a resumed training run continues the same wandb run.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import uuid
from pathlib import Path
from typing import Any

from pcdrl.runtime.config_loader import did_you_mean

REPORTERS = ("wandb", "tensorboard")


class ReportConfigError(ValueError):
    """A bad `report_to` entry, or a reporter whose library is not installed."""


def check_report_to(names: list[str]) -> list[str]:
    """Validate names; unknown ones raise ReportConfigError listing the known ones (and suggesting the closest)."""
    if isinstance(names, str):  # `report_to: wandb` in YAML
        names = [names]
    for name in names:
        if name not in REPORTERS:
            raise ReportConfigError(f"unknown report_to {name!r} (known: {', '.join(REPORTERS)})"
                                    f"{did_you_mean(name, REPORTERS)}")
    return list(dict.fromkeys(names))


class Reporter:
    """Sends each step's scalar metrics to wandb and/or tensorboard, besides metrics.jsonl (which RunDir always writes)."""

    def __init__(self, run_dir: Path, report_to: list[str], config: dict, run_name: str,
                 project: str = "pcd-rl", resume: bool = False):
        self.run_dir = Path(run_dir)
        self.report_to = check_report_to(report_to)
        self.wandb_run = None
        self.writer = None
        self._last_step = 0
        if self.report_to:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            if "tensorboard" in self.report_to:
                self.writer = _summary_writer(self.run_dir / "tensorboard")
            if "wandb" in self.report_to:
                self.wandb_run = _wandb_init(self.run_dir, config, run_name, project, resume)
        except BaseException:
            self.close(exit_code=1)
            raise

    def log(self, step: int, metrics: dict) -> None:
        """Send the finite numeric scalars of `metrics` (nested dicts joined with "/") at `step`."""
        scalars = _scalars(metrics)
        self._last_step = max(self._last_step, step)
        if not scalars:
            return
        if self.wandb_run is not None:
            self.wandb_run.log(scalars, step=step)
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(name, value, step)

    def summary(self, summary: dict) -> None:
        """Final numbers: wandb run.summary, and tensorboard scalars (summary/...) plus a text table at the last step."""
        scalars = _scalars(summary)
        if self.wandb_run is not None:
            self.wandb_run.summary.update(scalars)
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(f"summary/{name}", value, self._last_step)
            text = json.dumps(_flatten(summary), indent=2, default=str)
            self.writer.add_text("summary", f"```\n{text}\n```", self._last_step)

    def close(self, exit_code: int = 0) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.wandb_run is not None:
            self.wandb_run.finish(exit_code=exit_code)
            self.wandb_run = None

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exit_code=0 if exc_type is None else 1)


def _flatten(metrics: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def _scalars(metrics: dict) -> dict[str, float]:
    """Flattened finite numbers; tensors and numpy scalars become floats, everything else is dropped."""
    out = {}
    for name, value in _flatten(metrics).items():
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            value = value.item()
        if isinstance(value, numbers.Real) and math.isfinite(value):
            out[name] = float(value)
    return out


def _summary_writer(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ReportConfigError(f"report_to includes 'tensorboard' but it cannot be imported ({err}): pip install tensorboard") from err
    return SummaryWriter(log_dir=str(log_dir))


def _wandb_mode() -> str:
    """A user-set WANDB_MODE wins; otherwise online only when WANDB_API_KEY is set."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode == "dryrun":
        return "offline"
    if mode:
        return mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def _wandb_init(run_dir: Path, config: dict, run_name: str, project: str, resume: bool):
    try:
        import wandb
    except ImportError as err:
        raise ReportConfigError("report_to includes 'wandb' but wandb is not installed: pip install wandb") from err
    id_file = run_dir / "wandb_id.txt"
    if resume and id_file.exists():
        run_id = id_file.read_text().strip()
    else:
        run_id = uuid.uuid4().hex[:8]
        id_file.write_text(run_id + "\n")
    return wandb.init(
        project=project, name=run_name, id=run_id, dir=str(run_dir), config=config,
        mode=_wandb_mode(), resume="allow" if resume else None, allow_val_change=resume,
        settings=wandb.Settings(console="off", silent=True, x_disable_stats=True),  # no CPU sampler: cores are scarce
    )
