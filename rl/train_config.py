"""Typed config for `pcdrl train`: RL on concept sets."""
from __future__ import annotations

from dataclasses import dataclass, field

from configs.loader import ConfigError
from models.backends.base import BackendConfig
from rl.losses import LOSS_TYPES, SCALES
from rl.policy import PolicyConfig
from simulators.config import JudgeConfig


@dataclass
class GRPOConfig:
    """Group-relative policy optimisation."""

    group_size: int = 4
    """Concept sets sampled per item (G)."""
    loss_type: str = "grpo"
    """grpo | dr_grpo | dapo: how pick-level losses are averaged."""
    scale: str = "group"
    """Advantage scaling: group | batch | none."""
    clip_low: float = 0.2
    """Lower ratio clip (1 - clip_low)."""
    clip_high: float = 0.2
    """Upper ratio clip (1 + clip_high); DAPO raises it."""
    updates_per_batch: int = 1
    """μ: optimizer steps on each rollout batch."""

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ConfigError(f"grpo.group_size: needs at least 2 samples per item, got {self.group_size}")
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"grpo.loss_type: '{self.loss_type}' is not one of {list(LOSS_TYPES)}")
        if self.scale not in SCALES:
            raise ConfigError(f"grpo.scale: '{self.scale}' is not one of {list(SCALES)}")


@dataclass
class KLConfig:
    """The pull toward the pretrained policy."""

    beta: float = 0.0
    """KL coefficient (0 turns the penalty off)."""
    estimator: str = "k3"
    """k1 | k3."""
    quantize_reference: bool = False
    """Keep the reference's W_enc in int8 (CPU)."""

    def __post_init__(self) -> None:
        if self.estimator not in ("k1", "k3"):
            raise ConfigError(f"kl.estimator: '{self.estimator}' is not k1 or k3")


@dataclass
class RLTrainConfig:
    """`pcdrl train CONFIG`: GRPO on concept sets."""

    pcd: str = "runs/quickstart/pcd-pretrain/pcd"
    """The labelled, pretrained PCD: the starting policy and the reference."""
    data: str = "runs/quickstart/data"
    """A `pcdrl data build` run folder."""
    families: list[str] = field(default_factory=lambda: ["continuation"])
    """Question families to train and evaluate on."""
    algorithm: str = "grpo"
    """grpo (ppo: the losses exist in rl/losses.py; its loop is not built yet)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """How concept sets are sampled; LoRA on W_enc."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    """The training judge (the simulated human)."""
    heldout_judges: list[JudgeConfig] = field(
        default_factory=lambda: [JudgeConfig(name="gemma", backend=BackendConfig(model="gemma3-270m"))])
    """Judges used only for evaluation (another model family)."""
    rewards: dict[str, float] = field(default_factory=lambda: {"judge_logprob": 1.0})
    """Reward terms and weights (rewards/terms.py, or module:function plugins)."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    """GRPO settings."""
    kl: KLConfig = field(default_factory=KLConfig)
    """KL to the pretrained policy."""
    steps: int = 20
    """Rollout batches."""
    items_per_step: int = 16
    """Items per rollout batch (each sampled group_size times)."""
    lr: float = 3e-3
    """Adam learning rate for the LoRA weights."""
    max_train_items: int = 0
    """Use at most this many training items (0 = all)."""
    max_eval_items: int = 0
    """Evaluate on at most this many held-out items (0 = all)."""
    checkpoint_every: int = 5
    """Rollout batches between checkpoints."""
    seed: int = 0
    """Seeds the data order, the sampling and the LoRA init."""
    threads: int = 0
    """torch threads (0 = torch's default)."""

    def __post_init__(self) -> None:
        if self.algorithm != "grpo":
            raise ConfigError(f"algorithm: '{self.algorithm}' is not available yet; use grpo")
        if self.steps < 1 or self.items_per_step < 1 or self.checkpoint_every < 1:
            raise ConfigError("steps, items_per_step and checkpoint_every must be >= 1")
        from rewards import RewardConfigError, check_weights

        try:
            check_weights(self.rewards)
        except RewardConfigError as err:
            raise ConfigError(f"rewards: {err}") from None
