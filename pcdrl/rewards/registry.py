"""Reward terms by name, and their weighted sum.

A name is a built-in term (`pcdrl/rewards/terms.py`) or a user plugin written `module:function`; the
function takes a `RewardBatch` and returns one number per row. Each term's mean and standard
deviation is reported, so every step can log them beside the weighted total. A plugin may declare
what it reads with `pcdrl.rewards.terms.reads`; one that does not is assumed to read everything.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import torch

from pcdrl.rewards.batch import RewardBatch
from pcdrl.rewards.terms import BUILTIN, term_reads

RewardFn = Callable[[RewardBatch], torch.Tensor]


class RewardConfigError(ValueError):
    pass


def resolve(name: str) -> RewardFn:
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" in name:
        module_name, _, function_name = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise RewardConfigError(f"reward plugin '{name}': cannot import module '{module_name}' ({err})") from err
        function = getattr(module, function_name, None)
        if not callable(function):
            raise RewardConfigError(f"reward plugin '{name}': module '{module_name}' has no function '{function_name}'")
        return function
    raise RewardConfigError(
        f"unknown reward '{name}'; built-in rewards: {', '.join(sorted(BUILTIN))} (or a plugin as module:function)"
    )


def check_weights(weights: dict[str, float]) -> dict[str, RewardFn]:
    """Resolve every named term; refuse an empty or all-zero weighting, which would train on nothing."""
    if not weights or all(w == 0 for w in weights.values()):
        raise RewardConfigError(
            f"rewards: every weight is zero ({weights}); give at least one term a non-zero weight, "
            "e.g. rewards: {judge_correct: 1.0}"
        )
    return {name: resolve(name) for name in weights}


def needs_every_option(functions: dict[str, RewardFn]) -> bool:
    """Whether any listed term (weighted zero or not: every term is computed and logged) reads the judge's
    probabilities, which need every option scored. When none does, the judge scores only the true options."""
    return any("judge_probs" in term_reads(f) for f in functions.values())


@dataclass
class CombinedReward:
    total: torch.Tensor
    """[N] the weighted sum; NaN where any active term was NaN for that row."""
    terms: dict[str, torch.Tensor]
    """Each term's raw values [N]."""
    finite: torch.Tensor
    """[N] bool: rows whose total is finite (the trainer skips and counts the others)."""

    def log_record(self, prefix: str = "reward") -> dict[str, float]:
        record = {}
        for name, values in self.terms.items():
            ok = values[torch.isfinite(values)]
            record[f"{prefix}/{name}/mean"] = ok.mean().item() if len(ok) else float("nan")
            record[f"{prefix}/{name}/std"] = ok.std(unbiased=False).item() if len(ok) else float("nan")
        ok = self.total[self.finite]
        record[f"{prefix}/total/mean"] = ok.mean().item() if len(ok) else float("nan")
        record[f"{prefix}/nonfinite_rows"] = int((~self.finite).sum())
        return record


def combine(weights: dict[str, float], batch: RewardBatch, functions: dict[str, RewardFn] | None = None) -> CombinedReward:
    functions = functions or check_weights(weights)
    terms: dict[str, torch.Tensor] = {}
    total = torch.zeros(len(batch), dtype=torch.float64)
    for name, weight in weights.items():
        values = torch.as_tensor(functions[name](batch), dtype=torch.float64).reshape(-1)
        if values.shape[0] != len(batch):
            raise RewardConfigError(f"reward '{name}' returned {values.shape[0]} values for a batch of {len(batch)}")
        terms[name] = values
        if weight != 0:
            total = total + weight * values
    return CombinedReward(total=total, terms=terms, finite=torch.isfinite(total))
