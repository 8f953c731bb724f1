"""Typed config for `pcdrl data build`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from pcdrl.runtime.config_loader import ConfigError, all_of, at_least, did_you_mean, finite_numbers, seed_value

from pcdrl.models.registry import model_name
from pcdrl.models.backends.base import BackendConfig
from pcdrl.pcd.config import CorpusConfig

Distractors = Literal["random", "same_source"]


@dataclass
class ContinuationConfig:
    """Which of n continuations did S write? Built from corpus windows."""

    enabled: bool = True
    """Build this family."""
    n_items: int = 400
    """Windows to turn into questions (before the split)."""
    n_options: int = 4
    """Options per question: S's continuation and n-1 continuations of other windows."""
    distractors: Distractors = "random"
    """Which windows' continuations are the wrong options, always from the item's split: `random` (any source;
    a judge can win by recognising the source) or `same_source` (the nearest windows of the item's own source:
    same built-in corpus or same file, closest in the text), the honest test of meaning."""
    continuation_tokens: int = 6
    """Tokens S writes greedily after the window; every option has exactly this many (EOS is suppressed)."""
    prefix_len: int = 8
    """Tokens before the read span (match the PCD's window.prefix_len)."""
    middle_len: int = 8
    """Tokens the encoder reads (match the PCD's window.middle_len)."""
    corpus: CorpusConfig = field(default_factory=lambda: CorpusConfig(max_windows=4096, heldout_fraction=0.5))
    """Text the windows come from (see pcd.config.CorpusConfig)."""
    question: str = "Which text will the model write next?"
    """The question the judge is asked."""

    def __post_init__(self) -> None:
        at_least("continuation.n_items", self.n_items, 1, " (windows turned into questions)")
        if self.n_options < 2:
            raise ConfigError(f"continuation.n_options must be at least 2, got {self.n_options}")
        if self.continuation_tokens < 1:
            raise ConfigError(f"continuation.continuation_tokens must be positive, got {self.continuation_tokens}")
        if self.distractors not in get_args(Distractors):
            raise ConfigError(
                f"continuation.distractors: {self.distractors!r} is not one of {list(get_args(Distractors))}"
            )
        at_least("continuation.prefix_len", self.prefix_len, 0)
        at_least("continuation.middle_len", self.middle_len, 1, " (tokens the encoder reads)")
        if not self.question.strip():
            raise ConfigError("continuation.question: empty; write the question the judge is asked")


@dataclass
class AttributesConfig:
    """S answers chat prompts; deterministic checkers label each answer."""

    enabled: bool = True
    """Build this family."""
    prompts: str = "builtin"
    """`builtin` (behaviors/data/chat_prompts.yaml), a YAML of the same shape, or a JSONL/text file of prompts."""
    max_prompts: int = 0
    """Use at most this many prompts, spread over groups (0 = all)."""
    checkers: list[str] = field(
        default_factory=lambda: [
            "refusal", "contains_number", "list_format", "asks_question",
            "mentions_place", "contains_code", "starts_affirmative", "length_bucket",
        ]
    )
    """Checker names (pcdrl/behaviors/checkers.py); each becomes one attribute."""
    max_new_tokens: int = 48
    """S's answer is greedy and capped at this many tokens."""
    read_last: int = 8
    """The encoder reads the prompt's last tokens (the chat template's assistant header included)."""
    balance_factor: float = 1.5
    """No answer may occur more than this many times as often as the rarest one (1.5 -> at most 60/40)."""
    min_items: int = 12
    """An attribute with fewer items after balancing is dropped (and named in the summary)."""

    def __post_init__(self) -> None:
        from pcdrl.behaviors.checkers import CHECKERS

        finite_numbers(self)
        unknown = [name for name in self.checkers if name not in CHECKERS]
        if unknown:
            raise ConfigError(f"attributes.checkers: unknown checker(s) {unknown}; known: {', '.join(sorted(CHECKERS))}"
                              + did_you_mean(unknown[0], CHECKERS))
        all_of("attributes.checkers", self.checkers, CHECKERS)  # and none twice
        if self.enabled and not self.checkers:
            raise ConfigError("attributes.checkers: empty; name at least one checker, or set attributes.enabled=false")
        if not self.balance_factor >= 1.0:
            raise ConfigError(f"attributes.balance_factor: must be >= 1, got {self.balance_factor}")
        at_least("attributes.max_prompts", self.max_prompts, 0, " (0 = all)")
        at_least("attributes.max_new_tokens", self.max_new_tokens, 1)
        at_least("attributes.read_last", self.read_last, 1)
        at_least("attributes.min_items", self.min_items, 1)


@dataclass
class SplitConfig:
    """How items are split. Whole prompts (and whole attributes) are held out, never single items."""

    test_fraction: float = 0.3
    """Fraction of prompts/windows whose items all go to the test split."""
    heldout_attributes: list[str] = field(default_factory=lambda: ["mentions_place"])
    """Attributes that appear only in the test split (a held-out question type)."""
    seed: int = 0
    """Seed of the prompt-to-split hash."""

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"split.test_fraction: must be in (0, 1), got {self.test_fraction}")
        seed_value("split.seed", self.seed)


@dataclass
class DataBuildConfig:
    """`pcdrl data build CONFIG`: run S, record what it does, write a datasets.Dataset."""

    subject_model: str = "smollm2-135m-instruct"
    """S: an offline default name, local folder or hub id."""
    layer: int = 15
    """The layer the encoder reads (recorded in every item; it must match the PCD)."""
    pcd: str = ""
    """Optional PCD checkpoint: if set, subject_model and layer must match its config.json, and the summary
    reports how often continuation options share a word with the labels of each item's top concepts."""
    overlap_concepts: int = 8
    """With `pcd`: how many pretrained greedy concepts' labels per item the option overlap reads (as
    judge-eval's n_concepts_shown)."""
    generation: BackendConfig = field(default_factory=lambda: BackendConfig(batch_size=16))
    """How S generates (kind hf | vllm | http). `generation.model` empty or default = subject_model."""
    continuation: ContinuationConfig = field(default_factory=ContinuationConfig)
    """The continuation multiple-choice family."""
    attributes: AttributesConfig = field(default_factory=AttributesConfig)
    """The response-attribute family."""
    audit_files: list[str] = field(default_factory=list)
    """Custom audit JSONL files (schema in docs/audit_files.md)."""
    split: SplitConfig = field(default_factory=SplitConfig)
    """Train/test split."""
    seed: int = 0
    """Seed for window order and distractor choice."""

    def __post_init__(self) -> None:
        at_least("layer", self.layer, 0)
        at_least("overlap_concepts", self.overlap_concepts, 1)
        seed_value("seed", self.seed)
        model_name("subject_model", self.subject_model)
        if not (self.continuation.enabled or self.attributes.enabled or self.audit_files):
            raise ConfigError("continuation.enabled, attributes.enabled, audit_files: nothing to build; enable a "
                              "family or give audit_files")
