"""The run folder every command writes: config.yaml, metrics.jsonl, summary.json, checkpoints/."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from configs.atomic import atomic_write_json, atomic_write_text
from configs.loader import dump_yaml


class RunDir:
    """One run's outputs. Metrics append line by line so a killed run keeps what it logged."""

    def __init__(self, out: str | Path, config: Any | None = None, command: str = ""):
        self.path = Path(out)
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"
        self.command = command
        if config is not None:
            atomic_write_text(self.path / "config.yaml", (f"# {command}\n" if command else "") + dump_yaml(config))
        self._metrics = open(self.path / "metrics.jsonl", "a", buffering=1)

    def log(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **{k: _plain(v) for k, v in record.items()}}
        self._metrics.write(json.dumps(record) + "\n")

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.path / "summary.json", {k: _plain(v) for k, v in summary.items()})

    def close(self) -> None:
        self._metrics.close()


def _plain(value: Any) -> Any:
    """JSON-safe scalars: tensors and numpy numbers become floats, NaN becomes null."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
