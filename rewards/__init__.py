"""Reward terms (pure functions of a `RewardBatch`) and their weighted combination."""
from rewards.batch import RewardBatch
from rewards.registry import CombinedReward, RewardConfigError, check_weights, combine, resolve
from rewards.terms import BUILTIN

__all__ = ["BUILTIN", "CombinedReward", "RewardBatch", "RewardConfigError", "check_weights", "combine", "resolve"]
