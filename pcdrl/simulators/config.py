"""Typed config for a simulated-human judge."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pcdrl.models.backends.base import BackendConfig


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
        from pcdrl.runtime.config_loader import ConfigError, at_least, finite_numbers, one_of

        finite_numbers(self)
        if not self.name.strip():
            raise ConfigError("judge.name: empty; give the judge a short name (it keys the results), e.g. smollm2")
        if self.calibration not in ("pmi", "none"):
            raise ConfigError(f"judge.calibration: '{self.calibration}' must be 'pmi' or 'none'")
        if not self.temperature > 0:
            raise ConfigError(f"judge.temperature: must be positive, got {self.temperature}")
        at_least("judge.max_labels", self.max_labels, 1)
        # A template or persona typo would otherwise surface only when the first prompt is rendered, after
        # the models have loaded.
        templates = _read_templates(self.templates_file)
        one_of("judge.template", self.template, templates.get("templates") or {})
        one_of("judge.persona", self.persona, templates.get("personas") or {})


def _read_templates(templates_file: str) -> dict:
    from pcdrl.runtime.config_loader import ConfigError
    from pcdrl.simulators.render import DEFAULT_TEMPLATES

    path = Path(templates_file or DEFAULT_TEMPLATES)
    try:
        found = path.is_file()
    except (OSError, ValueError):  # a name too long for the OS
        found = False
    if not found:
        raise ConfigError(f"judge.templates_file: {path} does not exist (leave it empty for the shipped "
                          f"{DEFAULT_TEMPLATES.name}, or give a YAML with `templates:` and `personas:`)")
    data = _parse_templates(str(path), os.stat(path).st_mtime_ns)
    if not isinstance(data, dict):
        raise ConfigError(f"judge.templates_file: {path} must be a mapping with `templates:` and `personas:`")
    return data


@lru_cache(maxsize=8)
def _parse_templates(path: str, mtime_ns: int):
    """Parsed once per file version: every JudgeConfig made reads it."""
    from pcdrl.runtime.config_loader import read_yaml_file

    return read_yaml_file(path)
