"""Typed config for a simulated-human judge."""
from __future__ import annotations

from dataclasses import dataclass, field

from models.backends.base import BackendConfig


@dataclass
class JudgeConfig:
    """A frozen LM that answers behaviour questions from an explanation alone."""

    name: str = "smollm2"
    """Short name used in reports and summary.json keys."""
    backend: BackendConfig = field(default_factory=BackendConfig)
    """How the judge model runs (hf, vllm or http) and which model it is."""
    template: str = "default"
    """A template name in `templates_file`."""
    persona: str = "novice"
    """A persona name in `templates_file` (who the simulated human is)."""
    templates_file: str = ""
    """YAML of templates and personas; empty = configs/judges/templates.yaml."""
    calibration: str = "pmi"
    """`pmi`: option log-likelihood minus its log-likelihood without the explanation; `none`: raw."""
    temperature: float = 1.0
    """Softmax temperature that turns option scores into probabilities."""
    max_labels: int = 8
    """At most this many concept labels are shown (the first ones given)."""

    def __post_init__(self) -> None:
        from configs.loader import ConfigError

        if self.calibration not in ("pmi", "none"):
            raise ConfigError(f"judge.calibration: '{self.calibration}' must be 'pmi' or 'none'")
        if self.temperature <= 0:
            raise ConfigError(f"judge.temperature: must be positive, got {self.temperature}")
