"""Typed config for `pcdrl judge-eval`."""
from __future__ import annotations

from dataclasses import dataclass, field

from pcdrl.runtime.config_loader import ConfigError, at_least, finite_numbers, one_of, seed_value
from pcdrl.models.backends.base import BackendConfig
from pcdrl.simulators.config import JudgeConfig

ROWS = ("prior", "random", "pretrained", "oracle")


def _default_judges() -> list[JudgeConfig]:
    return [
        JudgeConfig(name="smollm2", backend=BackendConfig(model="smollm2-135m-instruct")),
        JudgeConfig(name="gemma", backend=BackendConfig(model="gemma3-270m")),
    ]


@dataclass
class JudgeEvalConfig:
    """Score each judge on held-out behaviour questions under several kinds of explanation."""

    data: str = "runs/quickstart/data"
    """A `pcdrl data build` run folder (or its dataset/ folder)."""
    pcd: str = "runs/quickstart/pcd-pretrain/pcd"
    """The labelled PCD checkpoint behind the `random` and `pretrained` rows."""
    split: str = "test"
    """Which split to score (held-out questions by default)."""
    judges: list[JudgeConfig] = field(default_factory=_default_judges)
    """The simulated humans."""
    rows: list[str] = field(default_factory=lambda: list(ROWS))
    """Explanations to compare: prior (none), random concepts, pretrained greedy top-k, oracle (S's output)."""
    n_concepts_shown: int = 8
    """Concepts per explanation in the random and pretrained rows."""
    max_items_per_family: int = 0
    """Score at most this many items per family (0 = all), chosen by a seeded shuffle."""
    items_per_call: int = 32
    """Items per judge call; results are journalled after each call, so an interrupted run resumes."""
    bootstrap_resamples: int = 2000
    """Resamples for the 95% bootstrap intervals over items."""
    seed: int = 0
    """Seed for random concepts and item subsampling."""
    threads: int = 0
    """torch threads (0 = leave torch's default; set 1 on a shared 2-core machine)."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        one_of("split", self.split, ("train", "test"))
        unknown = [r for r in self.rows if r not in ROWS]
        if unknown:
            raise ConfigError(f"rows: unknown row(s) {unknown}; choose from {list(ROWS)}")
        if self.n_concepts_shown < 1:
            raise ConfigError(f"n_concepts_shown: must be >= 1, got {self.n_concepts_shown}")
        names = [j.name for j in self.judges]
        if len(set(names)) != len(names) or not names:
            raise ConfigError(f"judges: need at least one judge, with distinct names (got {names})")
        at_least("max_items_per_family", self.max_items_per_family, 0, " (0 = all)")
        at_least("items_per_call", self.items_per_call, 1)
        at_least("bootstrap_resamples", self.bootstrap_resamples, 100, " (fewer make the 95% intervals noise)")
        at_least("threads", self.threads, 0, " (0 = torch's default)")
        seed_value("seed", self.seed)
