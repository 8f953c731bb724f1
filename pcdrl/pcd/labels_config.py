"""Config for `pcdrl label CHECKPOINT`. Values live in configs/pcd/label_*.yaml."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pcdrl.runtime.config_loader import ConfigError, at_least, finite_numbers, seed_value

from pcdrl.models.registry import model_name
from pcdrl.pcd.output_labels import KINDS


@dataclass
class LabelConfig:
    """How concepts are labelled and how the labels are scored.

    ``kind`` picks what a label says (docs/labels.md), e.g. for a concept that fires on "of" and "and"
    after which S writes "the" or "a":

        input    the words "of", "and", "And"      (LM labeller: the explainer's text)
        output   then "the", "a", "his"
        both     on "of", "and"; then "the", "a"   (LM labeller: <explainer's text>; then "the", "a")
    """

    labeller: Literal["tokens", "lm"] = "lm"
    """`lm`: an explainer LM writes each label from top examples; `tokens`: token statistics (fast)."""
    kind: str = "input"
    """What a label says: `input` (where the concept fires), `output` (what S predicts next where it fires)
    or `both`. Applies to scored and `label_all` labels alike; concepts.json keeps both sides either way.
    `input` is the default because it measured best with the offline judges (docs/benchmarks.md, label kinds)."""
    words: int = 3
    """Tokens an `input` or `output` label lists."""
    both_words: int = 2
    """Tokens per side in a `both` label: two keep it about 14 SmolLM2 tokens, the size of a 3-word input label."""
    output_min_p: float = 0.05
    """An output token needs at least this mean probability where the concept fires (floors rare-token lift)."""
    explainer_model: str = "smollm2-135m-instruct"
    """Any models/ name; used when labeller is `lm`."""
    simulator_model: str = "smollm2-135m-instruct"
    """LM that reads only a label and predicts whether the concept fires on a context."""
    simulator_method: Literal["likelihood", "yes_no"] = "likelihood"
    """`likelihood`: does the label make the marked token more predictable? `yes_no`: ask the simulator."""
    label_windows: int = 1024
    """Windows to cut for labelling; those seen in pretraining are dropped."""
    max_concepts: int = 64
    """Concepts to label, sampled uniformly from those with enough examples."""
    min_examples: int = 5
    """Firings a concept needs on each half of the labelling text to be labelled."""
    label_all: bool = True
    """Also give every other concept that fires (at least twice) a token-statistics label, unscored, so that
    explanations built from any active concept can be rendered. Only the sampled concepts are scored."""
    explain_examples: int = 8
    """Top-activating contexts shown to the explainer."""
    score_positives: int = 5
    """Top-activating held-out contexts per concept in the detection test."""
    score_negatives: int = 5
    """Random held-out contexts where the concept is silent."""
    context_after: int = 2
    """Tokens shown after the marked token."""
    batch_size: int = 16
    """Prompts per simulator/explainer batch."""
    seed: int = 0
    """Concept sampling, negatives, and the shuffled-label control."""
    threads: int = 0
    """torch threads; 0 keeps torch's default."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        if self.kind not in KINDS:
            raise ConfigError(f"kind: {self.kind!r} must be one of {', '.join(KINDS)}")
        if not 0.0 <= self.output_min_p <= 1.0:
            raise ConfigError(f"output_min_p: must be a probability in [0, 1], got {self.output_min_p}")
        for name in ("max_concepts", "min_examples", "explain_examples", "score_positives", "score_negatives",
                     "batch_size", "words", "both_words"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.min_examples < self.score_positives:
            raise ConfigError(
                f"min_examples: {self.min_examples} must be >= score_positives={self.score_positives}, "
                "or some labelled concepts would lack positives to score"
            )
        at_least("label_windows", self.label_windows, 2, " (odd windows are scored, even ones explained)")
        at_least("context_after", self.context_after, 0)
        at_least("threads", self.threads, 0, " (0 = torch's default)")
        seed_value("seed", self.seed)
        if self.labeller == "lm":
            model_name("explainer_model", self.explainer_model)
        model_name("simulator_model", self.simulator_model)


@dataclass
class LabelRunConfig:
    """Everything `pcdrl label` reads. Corpus and windows come from the checkpoint's pretraining."""

    label: LabelConfig = field(default_factory=LabelConfig)
    """Labelling and auto-interp."""
