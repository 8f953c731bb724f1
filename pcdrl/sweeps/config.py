"""Typed config for `pcdrl sweep`: one `pcdrl train` run per (reward weights, seed).

Everything is checked here, at load, so that a typo fails before the first of many trials starts.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from pcdrl.runtime.config_loader import (ConfigError, did_you_mean, finite_numbers, load_config, one_of,
                                         resolve_config_path, seed_value)

MODES = ("grid", "simplex", "random")
LAUNCHERS = ("local", "ray")
# The sweep sets these per trial; a fixed value in `overrides` would silently undo the sweep.
SWEPT_KEYS = ("rewards", "seed", "threads")


@dataclass
class WeightsConfig:
    """How each trial's reward weights are chosen."""

    mode: str = "grid"
    """grid | simplex | random."""
    grid: dict[str, list[float]] = field(default_factory=dict)
    """grid: weights to try per reward term, e.g. {judge_logprob: [0.5, 1.0], sparsity: [0.0, 0.05]};
    the trials are their cartesian product."""
    terms: list[str] = field(default_factory=list)
    """simplex and random: the reward terms to weight."""
    resolution: int = 4
    """simplex: every weight vector whose entries are multiples of 1/resolution and sum to 1."""
    n_trials: int = 8
    """random: how many weight vectors to draw."""
    low: float = 0.0
    """random: the smallest weight."""
    high: float = 1.0
    """random: the largest weight."""
    seed: int = 0
    """random: seeds the draw, so the same config gives the same trials (and a rerun resumes them)."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        for name, values in self.grid.items():
            for i, value in enumerate(values):
                if not math.isfinite(value):
                    raise ConfigError(f"weights.grid.{name}[{i}]: must be a finite number, got {value!r}")
        if self.mode not in MODES:
            raise ConfigError(f"weights.mode: '{self.mode}' is not one of {list(MODES)}")
        seed_value("weights.seed", self.seed)
        if self.mode == "grid" and self.terms:
            raise ConfigError("weights.terms: only simplex and random read it; a grid names its terms in weights.grid")
        if self.mode != "grid" and self.grid:
            raise ConfigError(f"weights.grid: only mode grid reads it; mode {self.mode} takes weights.terms")
        if self.mode == "grid":
            self._check_grid()
        else:
            self._check_terms()
        self.vectors()  # an all-zero grid fails here

    @property
    def names(self) -> list[str]:
        return list(self.grid) if self.mode == "grid" else list(self.terms)

    def _check_names(self, where: str) -> None:
        from pcdrl.rewards import RewardConfigError, resolve
        from pcdrl.rl.train_config import check_reward_name

        for name in self.names:
            check_reward_name(where, name)
            try:
                resolve(name)
            except RewardConfigError as err:
                raise ConfigError(f"{where}: {err}") from None

    def _check_grid(self) -> None:
        example = "e.g. grid: {judge_logprob: [0.5, 1.0], sparsity: [0.0, 0.05]}"
        if not self.grid:
            raise ConfigError(f"weights.grid: empty; give each reward term a list of weights to try, {example}")
        self._check_names("weights.grid")
        for name, values in self.grid.items():
            if not values:
                raise ConfigError(f"weights.grid.{name}: no values; give at least one weight, {example}")
            if any(v < 0 for v in values):
                raise ConfigError(f"weights.grid.{name}: {values} has a negative weight; weights must be >= 0 "
                                  "(weight 0 keeps a term logged without training on it)")
            if len(set(values)) != len(values):
                raise ConfigError(f"weights.grid.{name}: {values} repeats a value; each trial must differ")

    def _check_terms(self) -> None:
        if not self.terms:
            raise ConfigError(f"weights.terms: empty; mode {self.mode} needs the reward terms to weight, "
                              "e.g. terms: [judge_logprob, sparsity]")
        if len(set(self.terms)) != len(self.terms):
            raise ConfigError(f"weights.terms: {self.terms} names a term twice")
        self._check_names("weights.terms")
        if self.mode == "simplex" and self.resolution < 1:
            raise ConfigError(f"weights.resolution: needs at least 1, got {self.resolution}")
        if self.mode == "random":
            if self.n_trials < 1:
                raise ConfigError(f"weights.n_trials: needs at least 1, got {self.n_trials}")
            if not 0 <= self.low <= self.high or self.high == 0:
                raise ConfigError(f"weights.low/high: need 0 <= low <= high and high > 0, got low={self.low}, "
                                  f"high={self.high}")

    def vectors(self) -> tuple[list[dict[str, float]], int]:
        """The weight vectors to train with, and how many all-zero ones were dropped (they train on nothing)."""
        if self.mode == "grid":
            candidates = [dict(zip(self.grid, combo)) for combo in itertools.product(*self.grid.values())]
        elif self.mode == "simplex":
            candidates = [{t: i / self.resolution for t, i in zip(self.terms, parts)}
                          for parts in _compositions(self.resolution, len(self.terms))]
        else:
            rng = random.Random(self.seed)
            # Rounded so that trial names stay short and a rerun of the same config names the same folders.
            drawn = [{t: round(rng.uniform(self.low, self.high), 4) for t in self.terms} for _ in range(self.n_trials)]
            candidates = [v for i, v in enumerate(drawn) if v not in drawn[:i]]
        kept = [{t: float(w) for t, w in v.items()} for v in candidates if any(w != 0 for w in v.values())]
        if not kept:
            raise ConfigError(f"weights: every weight vector is all zero ({candidates[:3]}...); give at least one "
                              "term a non-zero weight")
        return kept, len(candidates) - len(kept)


def _compositions(total: int, parts: int):
    """Every tuple of `parts` non-negative integers summing to `total` (stars and bars)."""
    for bars in itertools.combinations(range(total + parts - 1), parts - 1):
        edges = (-1, *bars, total + parts - 1)
        yield tuple(edges[i + 1] - edges[i] - 1 for i in range(parts))


@dataclass
class SweepConfig:
    """`pcdrl sweep SWEEP.yaml`: `pcdrl train BASE` once per (reward weights, seed), each in its own run folder."""

    base: str = "configs/rl/grpo_concepts.yaml"
    """The train config every trial starts from (paths in it are relative to where pcdrl sweep runs)."""
    overrides: list[str] = field(default_factory=list)
    """Dotted overrides applied to every trial, as on the pcdrl train command line, e.g. [steps=20, kl.beta=0.1]."""
    weights: WeightsConfig = field(default_factory=lambda: WeightsConfig(grid={"judge_logprob": [1.0]}))
    """How reward weights are chosen per trial."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Every weight vector is trained once per seed."""
    out: str = "runs/sweep"
    """The sweep folder: trials/<name>/ (ordinary run folders), results.sqlite, results.csv, pareto.png."""
    parallel: int = 2
    """Trials running at once."""
    launcher: str = "local"
    """local (a pool of child processes) | ray."""
    ray_address: str | None = None
    """ray: the cluster to join (e.g. ray://head:10001 or auto); null starts a local Ray instance. A remote
    cluster must see this folder and the data at the same paths (a shared filesystem)."""
    threads_per_trial: int = 1
    """torch threads (and OMP_NUM_THREADS) per trial; on Ray, the CPUs each trial reserves."""

    def __post_init__(self) -> None:
        one_of("launcher", self.launcher, LAUNCHERS)
        if self.parallel < 1 or self.threads_per_trial < 1:
            raise ConfigError(f"parallel and threads_per_trial must be >= 1, got {self.parallel} and "
                              f"{self.threads_per_trial}")
        if not self.seeds:
            raise ConfigError("seeds: empty; give at least one, e.g. seeds: [0, 1]")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: {self.seeds} repeats a seed")
        for i, seed in enumerate(self.seeds):
            seed_value(f"seeds[{i}]", seed)
        for item in self.overrides:
            key = item.partition("=")[0].strip()
            if "=" not in item:
                raise ConfigError(f"overrides: {item!r} must look like section.field=value (e.g. kl.beta=0.1)")
            if key.split(".")[0] in SWEPT_KEYS:
                raise ConfigError(f"overrides: {item!r} sets '{key}', which the sweep sets per trial; use "
                                  "weights: for rewards, seeds: for seed, threads_per_trial: for threads")
        try:
            found = resolve_config_path(self.base).is_file()
        except (OSError, ValueError):
            found = False
        if not found:
            raise ConfigError(f"base: {self.base} does not exist (a pcdrl train config, "
                              "e.g. configs/rl/grpo_concepts.yaml)")
        self.train_config()  # a typo in the base or the overrides fails now, not in every trial

    def train_config(self):
        """The base train config with the shared overrides and the first trial's weights: what the trials share."""
        from pcdrl.rl.train_config import RLTrainConfig

        first = self.weights.vectors()[0][0]
        try:
            return load_config(RLTrainConfig, self.base, [*self.overrides, f"rewards={json.dumps(first)}"])
        except ConfigError as err:
            raise ConfigError(f"base + overrides: {err}") from None


def load_sweep_config(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Load SWEEP.yaml. An override whose key is a sweep field (parallel=4, weights.resolution=5) changes the
    sweep; any other (steps=2, kl.beta=0.1) is appended to `overrides`, i.e. applies to every trial."""
    from pcdrl.rl.train_config import RLTrainConfig

    names = {f.name for f in dataclasses.fields(SweepConfig)}
    known = names | {f.name for f in dataclasses.fields(RLTrainConfig)}
    for item in overrides or []:
        key = item.partition("=")[0].split(".")[0].strip()
        if key not in known:
            raise ConfigError(f"{key}: unknown key, neither a sweep field ({', '.join(sorted(names))}) nor a train "
                              f"field{did_you_mean(key, sorted(known))}")
    mine = [o for o in overrides or [] if o.partition("=")[0].split(".")[0].strip() in names]
    cfg = load_config(SweepConfig, path, mine)
    train = [o for o in overrides or [] if o not in mine]
    return dataclasses.replace(cfg, overrides=[*cfg.overrides, *train]) if train else cfg
