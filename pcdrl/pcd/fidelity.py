"""Concept fidelity: do the concepts' labels still describe where they fire once RL has changed W_enc?

After RL, concept c fires where row c of the RL encoder puts it in a token's top-k, not where the
pretrained row did, and its label was written from the pretrained firings. Each label is scored
by the auto-interp detection test (pcdrl/pcd/labelling.py) twice, against each encoder's firings on the
same held-out windows, with the same negatives, so the two AUROCs of a concept form a pair.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import torch
from rich.console import Console
from torch import nn

from pcdrl.runtime.config_loader import ConfigError, seed_value

from pcdrl.models.registry import model_name
from pcdrl.pcd.examples import split_by_window
from pcdrl.pcd.labelling import labelling_windows, read_and_encode, score_labels, free_negatives
from pcdrl.pcd.labels_config import LabelConfig
from pcdrl.pcd.model import PCD
from pcdrl.pcd.stats import bootstrap_ci

console = Console(stderr=True)


@dataclass
class FidelityConfig:
    """The concept-fidelity control of `pcdrl eval`: labels' auto-interp AUROC under the pretrained and RL encoders."""

    label_windows: int = 256
    """Held-out windows to encode (labelling uses 1024; fewer keeps eval fast). Odd windows are scored."""
    score_positives: int = 5
    """Top-activating contexts per concept and encoder in the detection test."""
    score_negatives: int = 5
    """Random contexts per concept where it fires under neither encoder (shared by both)."""
    min_examples: int = 5
    """Firings a concept needs on the scored (odd) windows under both encoders; others are skipped and listed."""
    simulator_model: str = "smollm2-135m-instruct"
    """LM that reads only a label and predicts whether the concept fires on a context."""
    simulator_method: Literal["likelihood", "yes_no"] = "likelihood"
    """`likelihood`: does the label make the marked token more predictable? `yes_no`: ask the simulator."""
    batch_size: int = 16
    """Prompts per simulator batch."""
    bootstrap_resamples: int = 2000
    """Resamples of concepts for the 95% intervals."""
    seed: int = 0
    """Negatives and the bootstrap."""

    def __post_init__(self) -> None:
        if self.label_windows < 2:
            raise ConfigError(f"label_windows: must be >= 2 (odd windows are scored), got {self.label_windows}")
        for name in ("score_positives", "score_negatives", "min_examples", "batch_size", "bootstrap_resamples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.min_examples < self.score_positives:
            raise ConfigError(
                f"min_examples: {self.min_examples} must be >= score_positives={self.score_positives}, "
                "or some scored concepts would lack positives"
            )
        if self.simulator_method not in ("likelihood", "yes_no"):
            raise ConfigError(f"simulator_method: must be likelihood or yes_no, got {self.simulator_method!r}")
        seed_value("seed", self.seed)
        model_name("simulator_model", self.simulator_model)

    def label_config(self) -> LabelConfig:
        return LabelConfig(
            labeller="tokens", simulator_model=self.simulator_model, simulator_method=self.simulator_method,
            label_windows=self.label_windows, min_examples=self.min_examples, score_positives=self.score_positives,
            score_negatives=self.score_negatives, batch_size=self.batch_size, seed=self.seed, label_all=False,
        )


def concept_fidelity(
    pcd: PCD, encoders: dict[str, nn.Linear], concepts: list[int], labels: dict[int, str], cfg: FidelityConfig
) -> dict:
    """Mean detection AUROC of ``labels`` under encoders["before"] and encoders["after"], and their paired difference.

    Both linears map normalised activations to the m concept pre-activations, like ``pcdrl.pcd.encoder.W_enc``
    (for RL: `ConceptSetPolicy.merged_linear()`); a concept fires where it is in that encoder's top-k.
    """
    started = time.time()
    for name in ("before", "after"):
        if encoders[name].weight.shape != pcd.encoder.W_enc.weight.shape:
            raise ValueError(f"encoder {name!r} has shape {tuple(encoders[name].weight.shape)}, "
                             f"not W_enc's {tuple(pcd.encoder.W_enc.weight.shape)}")
    label_cfg = cfg.label_config()
    windows = _fidelity_windows(pcd, cfg.label_windows)
    before, after = read_and_encode(pcd, windows, [encoders["before"], encoders["after"]])

    prefix = pcd.training_data["window"]["prefix_len"]
    scored, skipped = [], []
    for c in concepts:
        counts = {name: len(split_by_window(f.get(c, []), 1)) for name, f in (("before", before), ("after", after))}
        if c not in labels:
            skipped.append({"id": c, "why": "no label"})
        elif min(counts.values()) < cfg.min_examples:
            skipped.append({"id": c, "why": f"fires {counts['before']} times before and {counts['after']} after on "
                                            f"the scored windows; needs {cfg.min_examples} under both"})
        elif (free := free_negatives(windows, prefix, {(f.window, f.position) for f in before[c] + after[c]})) \
                < 2 * cfg.score_negatives:
            # A concept that fires on nearly every token has no silent tokens to tell it apart from.
            skipped.append({"id": c, "why": f"fires almost everywhere: silent on only {free} scored positions, "
                                            f"needs {2 * cfg.score_negatives}"})
        else:
            scored.append(c)
    result = {"n_concepts": len(scored), "skipped": skipped, "label_windows": len(windows)}
    if not scored:
        return {**result, **dict.fromkeys(("before", "before_ci95", "after", "after_ci95", "difference",
                                           "difference_ci95")), "per_concept": []}

    # Negatives where the concept fires under neither encoder: the same draws serve both, so the two
    # AUROCs of a concept differ only through its positives (where each encoder makes it fire).
    silent = {c: before[c] + after[c] for c in scored}
    auroc = {}
    for name, firings in (("before", before), ("after", after)):
        console.log(f"fidelity: scoring {len(scored)} labels against the {name!r} encoder's firings")
        scores = score_labels(pcd, windows, firings, scored, labels, label_cfg,
                               negatives_avoid=silent, shuffled_control=False)
        auroc[name] = torch.tensor([scores["real"]["auroc"][c] for c in scored])

    def ci(values: torch.Tensor) -> list[float]:
        return list(bootstrap_ci(values, cfg.bootstrap_resamples, cfg.seed))

    difference = auroc["after"] - auroc["before"]
    console.log(f"fidelity: {len(scored)} concepts in {time.time() - started:.0f}s")
    return {
        **result,
        "before": auroc["before"].mean().item(), "before_ci95": ci(auroc["before"]),
        "after": auroc["after"].mean().item(), "after_ci95": ci(auroc["after"]),
        "difference": difference.mean().item(), "difference_ci95": ci(difference),  # resamples concepts: paired
        "per_concept": [{"id": c, "label": labels[c], "before": b, "after": a}
                        for c, b, a in zip(scored, auroc["before"].tolist(), auroc["after"].tolist())],
    }


def _fidelity_windows(pcd: PCD, n: int) -> torch.Tensor:
    """The first ``n`` of the windows `pcdrl label` cut. Each keeps its index, hence its parity, so labels
    (written from even windows) are scored only on odd windows they were never written from."""
    labelled_on = pcd.concepts.get("label_config", {}).get("label_windows", n)
    return labelling_windows(pcd, LabelConfig(label_windows=max(n, labelled_on)))[:n]
