"""Typed config for `pcdrl train`: RL on concept sets, or on formulas over concepts (`policy.kind`)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from pcdrl.runtime.config_loader import ConfigError, all_of, did_you_mean, at_least, finite_numbers, in_range, one_of, positive, seed_value
from pcdrl.models.backends.base import BackendConfig
from pcdrl.explanations import FormulaConfig
from pcdrl.rl.losses import LOSS_TYPES, SCALES
from pcdrl.rl.policy import PolicyConfig
from pcdrl.simulators.config import JudgeConfig


_PLUGIN = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def check_reward_name(where: str, name: str) -> None:
    """A built-in term, or a plugin written module:function. Anything else is refused before it is imported:
    `importlib` fails on names like ":f" or ".m:f" with errors that do not say which config key was wrong."""
    from pcdrl.rewards.terms import BUILTIN

    if name not in BUILTIN and not _PLUGIN.fullmatch(name):
        raise ConfigError(f"{where}: unknown reward {name!r}; built-in rewards: {', '.join(sorted(BUILTIN))} "
                          f"(or a plugin as module:function){did_you_mean(name, BUILTIN)}")


POLICY_KINDS = ("concepts", "formulas")
TRUTH_MODES = ("mask", "reward")
CONCEPT_ONLY_REWARDS = ("grounding",)
"""Terms that read a [N, K] tensor of chosen concepts, which a formula of variable size does not have."""


@dataclass
class TrainPolicyConfig(PolicyConfig):
    """The concept-set policy's settings, plus which kind of explanation the policy writes."""

    kind: str = "concepts"
    """concepts (a set of k labels, the settings above) | formulas (a formula over concepts: the `formula:`
    section; `k` then sets the warm start's greedy conjunction, the other settings are unused)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("policy.kind", self.kind, POLICY_KINDS)


@dataclass
class FormulaTrainConfig(FormulaConfig):
    """The formula policy: its limits (max_literals, max_depth, operators), how truth is kept, its warm start."""

    truth: str = "mask"
    """mask: the grammar's truth mask, so every sampled formula is true on its item; reward: no truth mask, and
    the `truth` reward term (1 when true) can teach it (docs/formulas.md)."""
    temperature: float = 1.0
    """Sampling temperature. The policy's concept logits start at 3x the item scores' spread, which is the
    concept-set policy's temperature 0.3 already."""
    warm_start_steps: int = 150
    """Teacher-forced steps toward each training item's greedy conjunction before RL (0: none)."""
    warm_start_lr: float = 3e-2
    """Adam learning rate of the warm start."""
    hidden: int = 64
    """GRU state size of the formula policy."""
    concept_rank: int = 8
    """Rank of the trainable update to the concept head (the PCD's W_enc, frozen)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        finite_numbers(self)
        one_of("truth", self.truth, TRUTH_MODES)
        positive("temperature", self.temperature, " (1.0 is the warm-started policy's own sharpness)")
        at_least("warm_start_steps", self.warm_start_steps, 0, " (0 skips the warm start)")
        positive("warm_start_lr", self.warm_start_lr)
        at_least("hidden", self.hidden, 1)
        at_least("concept_rank", self.concept_rank, 1)


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
        finite_numbers(self)
        if self.group_size < 2:
            raise ConfigError(f"grpo.group_size: needs at least 2 samples per item, got {self.group_size}")
        one_of("grpo.loss_type", self.loss_type, LOSS_TYPES)
        one_of("grpo.scale", self.scale, SCALES)
        _check_clips("grpo", self.clip_low, self.clip_high)
        at_least("grpo.updates_per_batch", self.updates_per_batch, 1)


def _check_clips(section: str, low: float, high: float) -> None:
    # The ratio is clipped to [1 - clip_low, 1 + clip_high]; clip_low >= 1 would let it reach 0 or below.
    in_range(f"{section}.clip_low", low, 0.0, 1.0, "[)", " (the ratio's lower clip is 1 - clip_low)")
    at_least(f"{section}.clip_high", high, 0.0, " (the ratio's upper clip is 1 + clip_high)")


@dataclass
class PPOConfig:
    """PPO with a learned critic. A concept set is a one-step episode, so its advantage is r − V(item); a formula
    is an episode of its decision tokens, where GAE applies (`gamma`, `lam`; rl/formula_ppo.py)."""

    samples_per_item: int = 1
    """Explanations sampled per item (PPO needs no group; match GRPO's budget with items_per_step or this)."""
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
    """Hidden width of the critic MLP on the pooled activation (concept sets; the formula policy's critic is
    its value head, a linear read of its GRU state)."""
    value_lr: float = 1e-2
    """Adam learning rate for the critic."""
    value_coef: float = 0.5
    """Weight of the value loss in the total loss."""
    value_clip: float = 1.0
    """Clip on the value change per batch, in reward units (PPO's clipped value loss)."""
    gamma: float = 1.0
    """Discount per step: per decision token of a formula (concept sets, one-step episodes, ignore it)."""
    lam: float = 1.0
    """GAE λ over a formula's decision tokens (concept sets ignore it)."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        if self.samples_per_item < 1:
            raise ConfigError(f"ppo.samples_per_item: needs at least 1, got {self.samples_per_item}")
        one_of("ppo.loss_type", self.loss_type, LOSS_TYPES)
        at_least("ppo.updates_per_batch", self.updates_per_batch, 1)
        _check_clips("ppo", self.clip_low, self.clip_high)
        at_least("ppo.value_hidden", self.value_hidden, 1)
        positive("ppo.value_lr", self.value_lr)
        at_least("ppo.value_coef", self.value_coef, 0.0)
        positive("ppo.value_clip", self.value_clip, " (the most the value may move per batch)")
        in_range("ppo.gamma", self.gamma, 0.0, 1.0)
        in_range("ppo.lam", self.lam, 0.0, 1.0)


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
        finite_numbers(self)
        one_of("kl.estimator", self.estimator, ("k1", "k3"))
        at_least("kl.beta", self.beta, 0.0, " (0 turns the KL penalty off; a negative one would reward drifting away)")


@dataclass
class RLTrainConfig:
    """`pcdrl train CONFIG`: GRPO or PPO on concept sets or formulas."""

    pcd: str = "runs/quickstart/pcd-pretrain/pcd"
    """The labelled, pretrained PCD: the starting policy and the reference."""
    data: str = "runs/quickstart/data"
    """A `pcdrl data build` run folder."""
    families: list[str] = field(default_factory=lambda: ["continuation"])
    """Question families to train and evaluate on."""
    algorithm: str = "grpo"
    """grpo | ppo."""
    policy: TrainPolicyConfig = field(default_factory=TrainPolicyConfig)
    """What the policy writes (kind), and how concept sets are sampled; LoRA on W_enc."""
    formula: FormulaTrainConfig = field(default_factory=FormulaTrainConfig)
    """The formula policy (used when policy.kind is formulas): limits, truth mask or reward, warm start."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    """The training judge (the simulated human)."""
    heldout_judges: list[JudgeConfig] = field(
        default_factory=lambda: [JudgeConfig(name="gemma", backend=BackendConfig(model="gemma3-270m"))])
    """Judges used only for evaluation (another model family)."""
    rewards: dict[str, float] = field(default_factory=lambda: {"judge_logprob": 1.0})
    """Reward terms and weights (pcdrl/rewards/terms.py, or module:function plugins)."""
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
        from pcdrl.behaviors.items import FAMILIES

        finite_numbers(self)
        if self.algorithm not in ("grpo", "ppo"):
            raise ConfigError(f"algorithm: '{self.algorithm}' is unknown; use grpo or ppo")
        for name in ("steps", "items_per_step", "checkpoint_every"):
            at_least(name, getattr(self, name), 1)
        positive("lr", self.lr)
        for name in ("max_train_items", "max_eval_items"):
            at_least(name, getattr(self, name), 0, " (0 = all)")
        at_least("threads", self.threads, 0, " (0 = torch's default)")
        seed_value("seed", self.seed)
        if not self.families:
            raise ConfigError(f"families: empty; train on at least one of {', '.join(FAMILIES)}")
        all_of("families", self.families, FAMILIES)
        names = [self.judge.name, *(j.name for j in self.heldout_judges)]
        if len(set(names)) != len(names):
            raise ConfigError(f"heldout_judges: judge names must differ from each other and from judge.name "
                              f"(got {names}); they key the results")
        for name, weight in self.rewards.items():
            check_reward_name("rewards", name)
            # Every built-in term is already signed so that higher is better (sparsity, brier are minus a cost).
            at_least(f"rewards.{name}", weight, 0.0, " (0 logs the term without training on it)")
        self._check_rewards_fit_kind()
        from pcdrl.rewards import RewardConfigError, check_weights

        try:
            check_weights(self.rewards)
        except RewardConfigError as err:
            raise ConfigError(f"rewards: {err}") from None
        if "judge_true_pmi" in self.rewards and self.judge.calibration != "pmi":
            raise ConfigError(
                "rewards.judge_true_pmi needs judge.calibration=pmi: with calibration "
                f"{self.judge.calibration} the judge's scores are raw log-likelihoods, and there is no "
                "no-explanation baseline to subtract (set judge.calibration=pmi, or use judge_logprob)")
        from pcdrl.runtime.reporting import ReportConfigError, check_report_to

        try:
            check_report_to(self.report_to)
        except ReportConfigError as err:
            raise ConfigError(f"report_to: {err}") from None

    def _check_rewards_fit_kind(self) -> None:
        if self.policy.kind == "concepts" and "truth" in self.rewards:
            raise ConfigError("rewards.truth scores formulas; set policy.kind=formulas, or drop the term")
        if self.policy.kind == "formulas":
            for name in CONCEPT_ONLY_REWARDS:
                if name in self.rewards:
                    raise ConfigError(f"rewards.{name} reads a fixed number of concepts per row and cannot score "
                                      "formulas (policy.kind=formulas); drop the term")

    @property
    def samples_per_item(self) -> int:
        return self.grpo.group_size if self.algorithm == "grpo" else self.ppo.samples_per_item
