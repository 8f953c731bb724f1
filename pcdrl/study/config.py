"""Typed config for a human study (`pcdrl study serve EVAL_DIR --config ...`). Frozen when the study starts."""
from __future__ import annotations

from dataclasses import dataclass, field

from pcdrl.runtime.config_loader import ConfigError, at_least, finite_numbers, in_range, seed_value


@dataclass
class StudyConfig:
    """Who sees what: the conditions, how many items each participant answers, and the limits of the page."""

    conditions: list[str] = field(default_factory=list)
    """Eval rows to show people (prior, random, pretrained, rl/0, oracle, a formula eval's matched concept row).
    Empty: every main row of the eval but the RL seeds after the first. `prior` is shown as no explanation."""
    items_per_participant: int = 0
    """Items each participant answers, at least (the items are cut into chunks of this many; a remainder is spread
    over the chunks); 0 = 4 per condition. Conditions are balanced within a participant."""
    max_items: int = 0
    """Use at most this many of the eval's items (a seeded draw); 0 = all of them."""
    seed: int = 0
    """Seeds the item draw, the assignment of items and conditions to participants, and their order."""
    attention_condition: str = "oracle"
    """The condition that doubles as an attention check (it shows what the model actually wrote), if it is shown."""
    attention_min_accuracy: float = 0.5
    """`pcdrl study report` leaves out participants below this accuracy on attention checks (and says how many)."""
    answers_per_minute: int = 30
    """Per participant: more answers than this within a minute get a 429 (nobody reads a question in 2 s)."""
    starts_per_minute: int = 60
    """Per client address: more new participants than this within a minute get a 429."""
    title: str = "What will the model write?"
    """The heading of every page."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        at_least("items_per_participant", self.items_per_participant, 0)
        at_least("max_items", self.max_items, 0)
        seed_value("seed", self.seed)
        in_range("attention_min_accuracy", self.attention_min_accuracy, 0.0, 1.0)
        at_least("answers_per_minute", self.answers_per_minute, 1)
        at_least("starts_per_minute", self.starts_per_minute, 1)
        if len(set(self.conditions)) != len(self.conditions):
            raise ConfigError(f"conditions: {self.conditions} names a condition twice; give each once")
        if self.items_per_participant and self.conditions and self.items_per_participant < len(self.conditions):
            raise ConfigError(f"items_per_participant: {self.items_per_participant} is fewer than the "
                              f"{len(self.conditions)} conditions; each participant must see every condition")
        if not self.title.strip() or len(self.title) > 200:
            raise ConfigError("title: give a heading of 1 to 200 characters")
