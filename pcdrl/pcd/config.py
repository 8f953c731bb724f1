"""Configs for the PCD and its pretraining. Values live in configs/pcd/*.yaml."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from pcdrl.runtime.config_loader import ConfigError, at_least, did_you_mean, finite_numbers, in_range, positive, seed_value

from pcdrl.models.registry import model_name


BUILTIN_SOURCE_NAMES = ("kjv", "python-docs")
"""The offline corpora pcd/corpus.py can load (its BUILTIN_SOURCES maps each to its loader)."""

@dataclass
class PCDConfig:
    """The architecture of one Predictive Concept Decoder. Saved as the checkpoint's config.json."""

    subject_model: str = "smollm2-135m-instruct"
    """Model whose activations are read (S); the decoder is S plus a LoRA adapter."""
    read_layer: int = 15
    """Residual stream read after this transformer block (0-based); about mid-depth."""
    n_concepts: int = 2048
    """Dictionary size m."""
    k: int = 16
    """Active concepts per token (top-k)."""
    aux_coef: float = 1e-4
    """epsilon of the auxiliary loss that revives dead concepts; 0 turns it off."""
    k_aux: int = 256
    """Dead concepts per token that the auxiliary loss pushes up."""
    dead_after_tokens: int = 20_000
    """A concept is dead when it was in no top-k for this many tokens."""
    lora_rank: int = 8
    """LoRA rank of the decoder adapter."""
    lora_alpha: int = 32
    """LoRA alpha (the paper uses 32)."""
    lora_dropout: float = 0.05
    """LoRA dropout."""
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names in S that get LoRA."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        if self.k < 1:
            raise ConfigError(f"k: must be >= 1, got {self.k}")
        if self.n_concepts < 1:
            raise ConfigError(f"n_concepts: must be >= 1, got {self.n_concepts}")
        if self.k > self.n_concepts:
            raise ConfigError(
                f"k: {self.k} active concepts cannot exceed the dictionary size n_concepts={self.n_concepts}; "
                "lower k or raise n_concepts"
            )
        if self.read_layer < 0:
            raise ConfigError(f"read_layer: must be >= 0, got {self.read_layer}")
        if self.aux_coef < 0:
            raise ConfigError(f"aux_coef: must be >= 0, got {self.aux_coef}")
        if self.k_aux < 1:
            raise ConfigError(f"k_aux: must be >= 1, got {self.k_aux}")
        at_least("dead_after_tokens", self.dead_after_tokens, 1)
        at_least("lora_rank", self.lora_rank, 1)
        positive("lora_alpha", self.lora_alpha)
        in_range("lora_dropout", self.lora_dropout, 0.0, 1.0, "[)")
        if not self.lora_targets:
            raise ConfigError("lora_targets: empty; name the modules of S that get LoRA, e.g. [q_proj, v_proj]")
        model_name("subject_model", self.subject_model)


@dataclass
class WindowConfig:
    """How corpus text is cut into pretraining windows."""

    prefix_len: int = 16
    """Tokens S reads before the middle (context only; nobody encodes them)."""
    middle_len: int = 16
    """Tokens whose activations the encoder reads; they become the soft tokens."""
    suffix_len: int = 16
    """Tokens the decoder must predict from the encoded middle."""

    def __post_init__(self) -> None:
        for name in ("middle_len", "suffix_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.prefix_len < 0:
            raise ConfigError(f"prefix_len: must be >= 0, got {self.prefix_len}")

    @property
    def total(self) -> int:
        return self.prefix_len + self.middle_len + self.suffix_len


@dataclass
class CorpusConfig:
    """Where pretraining and labelling text comes from."""

    sources: list[str] = field(default_factory=lambda: ["kjv", "python-docs"])
    """Built-in offline corpora (see pcdrl/pcd/corpus.py); ignored when `path` is set."""
    path: Optional[str] = None
    """A local .txt, .jsonl/.json, .parquet or .csv file (or a folder of them) read through `datasets`."""
    text_field: str = "text"
    """Column that holds the text in JSONL/parquet/CSV files."""
    max_windows: int = 4096
    """Windows to cut in all (train + held-out); more text is ignored."""
    heldout_fraction: float = 0.1
    """Share of windows held out for evaluation and labelling."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ConfigError(f"heldout_fraction: must be in (0, 1), got {self.heldout_fraction}")
        if self.max_windows < 2:
            raise ConfigError(f"max_windows: must be >= 2, got {self.max_windows}")
        if self.path is None and not self.sources:
            raise ConfigError("sources: give at least one built-in corpus, or set corpus.path")
        if self.path is None:
            for source in self.sources:
                if source not in BUILTIN_SOURCE_NAMES:
                    raise ConfigError(f"sources: unknown source {source!r}; built-in ones are {sorted(BUILTIN_SOURCE_NAMES)} "
                                      f"(or set corpus.path to a local file){did_you_mean(source, BUILTIN_SOURCE_NAMES)}")
            if len(set(self.sources)) != len(self.sources):
                raise ConfigError(f"sources: {self.sources} names a corpus twice")
        if not self.text_field:
            raise ConfigError("text_field: empty; name the column that holds the text (e.g. text)")


@dataclass
class TrainConfig:
    """Optimisation of the encoder and the decoder's LoRA."""

    steps: int = 200
    """Optimizer steps (the cosine horizon counts these, not micro-batches)."""
    batch_size: int = 8
    """Windows per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    lr: float = 1e-4
    """Peak learning rate (AdamW)."""
    encoder_lr: Optional[float] = None
    """Learning rate of the encoder; defaults to `lr`."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup_steps: int = 0
    """Linear warm-up steps before the cosine decay (the paper uses none)."""
    min_lr_ratio: float = 0.0
    """Cosine floor as a fraction of the peak."""
    grad_clip: float = 1.0
    """Global gradient-norm clip; 0 turns it off."""
    eval_every: int = 50
    """Held-out eval every this many optimizer steps (and at the end)."""
    eval_windows: int = 256
    """Held-out windows used by each eval."""
    checkpoint_every: int = 50
    """Atomic training checkpoint every this many optimizer steps."""
    log_every: int = 10
    """Write a metrics line every this many optimizer steps."""
    seed: int = 0
    """Seed for init, data order and dropout."""
    threads: int = 0
    """torch threads; 0 keeps torch's default (set OMP_NUM_THREADS=1 on a busy 2-core box)."""
    cache_activations: bool = True
    """Read S once per window and keep the activations on disk under $PCDRL_CACHE."""
    baselines: list[Literal["no_concepts", "raw_activations"]] = field(
        default_factory=lambda: ["no_concepts", "raw_activations"]
    )
    """Controls trained on the same budget: concepts zeroed, and the un-bottlenecked activations."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "checkpoint_every", "log_every", "eval_windows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        if self.encoder_lr is not None:
            positive("encoder_lr", self.encoder_lr, " (or null for lr)")
        at_least("weight_decay", self.weight_decay, 0.0)
        at_least("warmup_steps", self.warmup_steps, 0)
        in_range("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0, why=" (the cosine floor as a fraction of lr)")
        at_least("grad_clip", self.grad_clip, 0.0, " (0 turns clipping off)")
        at_least("threads", self.threads, 0, " (0 = torch's default)")
        seed_value("seed", self.seed)
        if len(set(self.baselines)) != len(self.baselines):
            raise ConfigError(f"baselines: {self.baselines} names a control twice")
        if self.warmup_steps >= self.steps:
            raise ConfigError(f"warmup_steps: {self.warmup_steps} must be below steps={self.steps}")


@dataclass
class PretrainRunConfig:
    """Everything `pcdrl pretrain CONFIG` reads."""

    pcd: PCDConfig = field(default_factory=PCDConfig)
    """The PCD architecture."""
    window: WindowConfig = field(default_factory=WindowConfig)
    """Prefix/middle/suffix lengths."""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    """Training text."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation."""
