"""Typed config for `pcdrl eval RUN [RUN ...]`."""
from __future__ import annotations

from dataclasses import dataclass, field

from pcdrl.runtime.config_loader import ConfigError, all_of, at_least, finite_numbers, one_of, seed_value
from pcdrl.pcd.fidelity import FidelityConfig
from pcdrl.simulators.config import JudgeConfig

ROWS = ("prior", "random", "pretrained", "rl", "oracle")
CONTROLS = ("shuffled_labels", "paraphrased_labels", "fidelity")
SPLITS = ("train", "test")


@dataclass
class EvalConfig:
    """Evaluate RL runs on held-out questions: explanation kinds × judges, with controls."""

    split: str = "test"
    """Which split of the run's data to score (held-out questions)."""
    judges: list[JudgeConfig] = field(default_factory=list)
    """The columns. Empty: the run's training judge, then its held-out judges (another model family)."""
    rows: list[str] = field(default_factory=lambda: list(ROWS))
    """prior (no explanation), random labelled concepts, pretrained greedy top-k, rl greedy top-k, oracle (S's output).
    A formula run's random, pretrained and rl rows show formulas (docs/eval.md, "Formula runs")."""
    controls: list[str] = field(default_factory=lambda: list(CONTROLS))
    """shuffled_labels and paraphrased_labels rescore the pretrained and rl rows with each concept given another
    concept's label, or its own label reworded; fidelity scores the labels by auto-interp before and after RL
    (not for formula runs: it is skipped, with a note in the summary)."""
    matched_concepts: list[str] = field(default_factory=list)
    """Formula runs only: concept-set run folders (policy.kind=concepts, same pcd, data and families), trained with
    policy.k near the formulas' mean size, for the row `rl_concepts`: at the same explanation size, is a formula more
    useful to the judge than a concept set? One per formula seed (paired in order), or any number, pooled like
    seeds. Scored on the formula rows' items; `rl − rl_concepts` gets its interval (docs/eval.md, "Formula runs")."""
    control_judges: list[str] = field(default_factory=list)
    """Judges that also score the label controls (empty: every judge)."""
    max_items: int = 0
    """Score at most this many held-out items (0 = all), chosen by a seeded shuffle."""
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    """How the fidelity control scores labels (auto-interp on the PCD's held-out text)."""
    fidelity_concepts: int = 16
    """The fidelity control scores this many concepts: those the RL policy puts in most held-out explanations."""
    examples: int = 12
    """Items written to examples.jsonl and shown side by side in report.html."""
    items_per_call: int = 32
    """Explanations per judge call; answers are journalled after each call, so an interrupted eval resumes."""
    bootstrap_resamples: int = 2000
    """Resamples for the 95% intervals (over items, and over seeds when several runs are given)."""
    seed: int = 0
    """Seeds random concepts, shuffled labels and item subsampling."""
    threads: int = 0
    """torch threads (0 = torch's default; 1 on a shared 2-core machine)."""

    def __post_init__(self) -> None:
        finite_numbers(self)
        one_of("split", self.split, SPLITS)
        unknown = [r for r in self.rows if r not in ROWS]
        if unknown:
            raise ConfigError(f"rows: unknown row(s) {unknown}; choose from {list(ROWS)}")
        unknown = [c for c in self.controls if c not in CONTROLS]
        if unknown:
            raise ConfigError(f"controls: unknown control(s) {unknown}; choose from {list(CONTROLS)}")
        if {"shuffled_labels", "paraphrased_labels"} & set(self.controls) and not {"pretrained", "rl"} <= set(self.rows):
            raise ConfigError("controls: the label controls rescore the pretrained and rl rows; keep both in `rows`")
        if self.matched_concepts and "rl" not in self.rows:
            raise ConfigError("matched_concepts: the matched concept-set row is compared with the rl row; keep rl "
                              "in `rows`")
        names = [j.name for j in self.judges]
        if len(set(names)) != len(names):
            raise ConfigError(f"judges: names must be distinct (got {names})")
        for name in ("max_items", "examples", "fidelity_concepts"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.items_per_call < 1 or self.bootstrap_resamples < 100:
            raise ConfigError("items_per_call must be >= 1 and bootstrap_resamples >= 100")
        at_least("threads", self.threads, 0, " (0 = torch's default)")
        seed_value("seed", self.seed)
        if self.judges:  # empty: the run's own judges, known only when the run is read
            all_of("control_judges", self.control_judges, names)
