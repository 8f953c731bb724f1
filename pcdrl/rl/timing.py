"""Wall time per phase of an RL step (sample, judge, reward, update), logged with every step's metrics."""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager


class Stopwatch:
    """Accumulates seconds per named phase: ``with watch("judge"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - started

    def record(self) -> dict[str, float]:
        return {f"time/{phase}_s": round(value, 4) for phase, value in self.seconds.items()}
