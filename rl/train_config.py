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
class PPOConfig:
    """PPO with a learned critic. Each explanation is a one-step episode, so the advantage is r − V(item);
    `gamma`/`lam` are there for multi-step episodes (formulas), where GAE applies."""

    samples_per_item: int = 1
    """Concept sets sampled per item (PPO needs no group; match GRPO's budget with items_per_step)."""
    loss_type: str = "dapo"
    """How pick-level losses are averaged (dapo: over all picks in the batch, PPO's token-level mean)."""
    clip_low: float = 0.2
    """Lower ratio clip."""
    clip_high: float = 0.2
    """Upper ratio clip."""
    updates_per_batch: int = 4
    """μ: optimizer steps on each rollout batch (the critic needs a few to track the reward)."""
    normalize_advantages: bool = True
    """Whiten advantages over the batch, which also hides a critic that is still warming up."""
    value_hidden: int = 128
    """Hidden width of the critic MLP on the pooled activation."""
    value_lr: float = 1e-2
    """Adam learning rate for the critic."""
    value_coef: float = 0.5
    """Weight of the value loss in the total loss."""
    value_clip: float = 1.0
    """Clip on the value change per batch, in reward units (PPO's clipped value loss)."""
    gamma: float = 1.0
    """Discount over episode steps (single-step episodes ignore it)."""
    lam: float = 1.0
    """GAE λ (single-step episodes ignore it)."""

    def __post_init__(self) -> None:
        if self.samples_per_item < 1:
            raise ConfigError(f"ppo.samples_per_item: needs at least 1, got {self.samples_per_item}")
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"ppo.loss_type: '{self.loss_type}' is not one of {list(LOSS_TYPES)}")
        if self.updates_per_batch < 1:
            raise ConfigError("ppo.updates_per_batch must be >= 1")


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
    """`pcdrl train CONFIG`: GRPO or PPO on concept sets."""

    pcd: str = "runs/quickstart/pcd-pretrain/pcd"
    """The labelled, pretrained PCD: the starting policy and the reference."""
    data: str = "runs/quickstart/data"
    """A `pcdrl data build` run folder."""
    families: list[str] = field(default_factory=lambda: ["continuation"])
    """Question families to train and evaluate on."""
    algorithm: str = "grpo"
    """grpo | ppo."""
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
    """GRPO settings (used when algorithm is grpo)."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO settings (used when algorithm is ppo)."""
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
    evaluate_pretrained: bool = True
    """Also score the pretrained policy on the held-out items (seed sweeps need it once, not per seed)."""
    checkpoint_every: int = 5
    """Rollout batches between checkpoints."""
    seed: int = 0
    """Seeds the data order, the sampling and the LoRA init."""
    threads: int = 0
    """torch threads (0 = torch's default)."""
    report_to: list[str] = field(default_factory=list)
    """Also send metrics to: wandb (offline without WANDB_API_KEY), tensorboard. metrics.jsonl is always written."""

    def __post_init__(self) -> None:
        if self.algorithm not in ("grpo", "ppo"):
            raise ConfigError(f"algorithm: '{self.algorithm}' is unknown; use grpo or ppo")
        if self.steps < 1 or self.items_per_step < 1 or self.checkpoint_every < 1:
            raise ConfigError("steps, items_per_step and checkpoint_every must be >= 1")
        from rewards import RewardConfigError, check_weights

        try:
            check_weights(self.rewards)
        except RewardConfigError as err:
            raise ConfigError(f"rewards: {err}") from None
        if "judge_true_pmi" in self.rewards and self.judge.calibration != "pmi":
            raise ConfigError(
                "rewards.judge_true_pmi needs judge.calibration=pmi: with calibration "
                f"{self.judge.calibration} the judge's scores are raw log-likelihoods, and there is no "
                "no-explanation baseline to subtract (set judge.calibration=pmi, or use judge_logprob)")
        from configs.reporting import ReportConfigError, check_report_to

        try:
            check_report_to(self.report_to)
        except ReportConfigError as err:
            raise ConfigError(f"report_to: {err}") from None

    @property
    def samples_per_item(self) -> int:
        return self.grpo.group_size if self.algorithm == "grpo" else self.ppo.samples_per_item
