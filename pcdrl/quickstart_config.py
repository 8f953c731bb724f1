"""Typed config for `pcdrl quickstart`: which stage configs to run, with which overrides."""
from __future__ import annotations

from dataclasses import dataclass, field

from pcdrl.runtime.config_loader import ConfigError, at_least


@dataclass
class StageConfig:
    """One stage of the pipeline: a YAML config of its own verb, plus dotted overrides."""

    config: str = ""
    """The stage's YAML (relative paths are from the repository root)."""
    overrides: list[str] = field(default_factory=list)
    """Dotted overrides applied on top, as on the command line (e.g. train.steps=50)."""

    def __post_init__(self) -> None:
        if not self.config.strip():
            raise ConfigError("config: empty; name the stage's YAML, e.g. configs/rl/grpo_concepts.yaml")
        bad = [o for o in self.overrides if "=" not in o]
        if bad:
            raise ConfigError(f"overrides: {bad} do not look like section.field=value")


@dataclass
class QuickstartConfig:
    """`pcdrl quickstart`: pretrain → label → data → GRPO → eval, each stage cached in its own run folder."""

    out: str = "runs/quickstart"
    """Where the stage folders go: pcd-pretrain/, label/, data/, grpo/, eval/."""
    pcd: str = ""
    """A PCD checkpoint folder to reuse instead of pretraining (it is labelled unless it has labels already)."""
    pretrain: StageConfig = field(default_factory=lambda: StageConfig("configs/pcd/quickstart.yaml"))
    """`pcdrl pretrain`."""
    label: StageConfig = field(default_factory=lambda: StageConfig("configs/pcd/label_quickstart.yaml"))
    """`pcdrl label`."""
    data: StageConfig = field(default_factory=lambda: StageConfig("configs/data/quickstart.yaml"))
    """`pcdrl data build`."""
    train: StageConfig = field(default_factory=lambda: StageConfig("configs/rl/grpo_concepts.yaml"))
    """`pcdrl train` (pcd and data are set to the stages above)."""
    eval: StageConfig = field(default_factory=lambda: StageConfig("configs/eval/eval.yaml"))
    """`pcdrl eval` on the trained run."""
    threads: int = 0
    """torch threads for every stage (0 = torch's default, which uses every core)."""

    def __post_init__(self) -> None:
        if not self.out.strip():
            raise ConfigError("out: empty; give the folder the stages go to, e.g. runs/quickstart")
        at_least("threads", self.threads, 0, " (0 = torch's default)")
