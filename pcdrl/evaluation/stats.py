"""Paired differences and verdicts for `pcdrl eval`. Pure functions.

Accuracies are matrices [runs, items]: the rows that depend on RL have one line per seed, the
others one line. Their 95% intervals come from the project's one bootstrap, `pcdrl.pcd.stats.bootstrap_mean`,
which resamples seeds and, within them, items.
"""
from __future__ import annotations

import torch


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a − b per (run, item), broadcasting a single-line row against per-seed rows."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    a, b = (a[None] if a.ndim == 1 else a), (b[None] if b.ndim == 1 else b)
    return a - b


def _excludes_zero(ci: list[float]) -> int:
    """+1 if the interval lies above zero, -1 below, 0 if it holds zero."""
    return 1 if ci[0] > 0 else -1 if ci[1] < 0 else 0


def _fmt(value: float, ci: list[float]) -> str:
    return f"{value:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def verdicts(summary: dict) -> list[str]:
    """Plain sentences on what the numbers show, controls included, for the table and the report."""
    lines = []
    controls = summary.get("controls", {})
    for judge, gain in summary.get("gain", {}).items():
        role = summary["judges"][judge]["role"]
        sign = _excludes_zero(gain["ci95"])
        text = _fmt(gain["rl_minus_pretrained"], gain["ci95"])
        if sign > 0:
            lines.append(f"{judge} ({role}): RL helps: RL − pretrained accuracy {text}.")
        elif sign < 0:
            lines.append(f"{judge} ({role}): RL hurts: RL − pretrained accuracy {text}.")
        else:
            lines.append(f"{judge} ({role}): no measurable gain: RL − pretrained accuracy {text} holds zero.")
        shuffled = controls.get("shuffled_labels", {}).get(judge)
        if shuffled:
            meaning = shuffled.get("meaning")
            if meaning and _excludes_zero(meaning["ci95"]) > 0:
                lines.append(f"{judge}: the labels' meaning helps: pretrained real − shuffled labels "
                             f"{_fmt(meaning['difference'], meaning['ci95'])}.")
            elif meaning:
                lines.append(f"{judge}: real labels do not beat shuffled ones "
                             f"({_fmt(meaning['difference'], meaning['ci95'])}): this judge may not read their meaning.")
            if sign > 0 and _excludes_zero(shuffled["gain_ci95"]) > 0:
                lines.append(f"{judge}: the gain survives shuffled labels ({_fmt(shuffled['gain'], shuffled['gain_ci95'])}): "
                             "the judge is not reading meaning, so the gain is not evidence of better explanations.")
            elif sign > 0:
                lines.append(f"{judge}: the gain vanishes with shuffled labels "
                             f"({_fmt(shuffled['gain'], shuffled['gain_ci95'])}): it comes through what the labels say.")
        paraphrased = controls.get("paraphrased_labels", {}).get(judge)
        if paraphrased and sign > 0:
            if _excludes_zero(paraphrased["gain_ci95"]) > 0:
                lines.append(f"{judge}: the gain survives paraphrased labels "
                             f"({_fmt(paraphrased['gain'], paraphrased['gain_ci95'])}): it is not tied to exact wording.")
            else:
                lines.append(f"{judge}: the gain does not survive paraphrased labels "
                             f"({_fmt(paraphrased['gain'], paraphrased['gain_ci95'])}): it may hang on exact wording.")
    fidelity = controls.get("fidelity")
    if fidelity and fidelity.get("n_concepts"):
        change = _excludes_zero(fidelity["difference_ci95"])
        what = {1: "rises", -1: "drops", 0: "does not change measurably"}[change]
        lines.append(f"Concept fidelity (auto-interp AUROC of the labels, {fidelity['n_concepts']} concepts RL uses most) "
                     f"{what} after RL: {fidelity['before']:.3f} → {fidelity['after']:.3f}, "
                     f"difference {_fmt(fidelity['difference'], fidelity['difference_ci95'])}.")
    return lines
