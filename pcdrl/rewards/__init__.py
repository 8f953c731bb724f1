"""Reward terms (pure functions of a `RewardBatch`) and their weighted combination."""
from pcdrl.rewards.batch import RewardBatch
from pcdrl.rewards.registry import CombinedReward, RewardConfigError, check_weights, combine, resolve
from pcdrl.rewards.terms import BUILTIN

__all__ = ["BUILTIN", "CombinedReward", "RewardBatch", "RewardConfigError", "check_weights", "combine", "resolve"]
