"""Finding `pcdrl train` runs on disk and loading their RL policies, for `pcdrl eval`.

A run folder holds config.yaml (the resolved RLTrainConfig) and checkpoints/step_XXXXXX/ with
trainable.safetensors: the LoRA and offsets under `policy.`, the PPO critic under `critic.`, and the
policy's logit scale as `buffer::logit_scale` (a formula run, policy.kind=formulas: the formula policy's
tensors under `policy.`, read by `rl.formula_rollout.load_formula_policy`). A checkpoint folder may be named
instead of its run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from pcdrl.runtime.config_loader import ConfigError, load_config
from pcdrl.pcd.train_state import CheckpointError, latest_checkpoint
from pcdrl.rl.train_config import RLTrainConfig

EXPECTED = ("a `pcdrl train` run folder: config.yaml (written by pcdrl train) and "
            "checkpoints/step_XXXXXX/trainable.safetensors; or one of its checkpoints/step_XXXXXX folders")


class NotARunError(ValueError):
    pass


@dataclass
class RunRef:
    path: Path
    """The run folder."""
    checkpoint: Path
    """The checkpoint evaluated (the latest one unless a checkpoint folder was named)."""
    config: RLTrainConfig
    """The run's resolved training config."""


def find_run(path: str | Path) -> RunRef:
    path = Path(path)
    if not path.exists():
        raise NotARunError(f"{path} does not exist; pcdrl eval expects {EXPECTED}")
    if (path / "trainable.safetensors").is_file() and path.parent.name == "checkpoints":
        run, checkpoint = path.parent.parent, path
    else:
        try:  # a dangling latest.txt falls back to the newest complete checkpoint, with a warning
            run, checkpoint = path, latest_checkpoint(path / "checkpoints")
        except CheckpointError as err:
            raise NotARunError(f"{path} has no checkpoint to evaluate: {err.fact}") from None
    found = sorted(p.name for p in run.iterdir()) if run.is_dir() else []
    if not (run / "config.yaml").is_file() or "pcdrl train" not in (run / "config.yaml").read_text().split("\n")[0]:
        raise NotARunError(f"{run} is not a pcdrl train run (it has: {', '.join(found) or 'nothing'}); "
                           f"pcdrl eval expects {EXPECTED}")
    if checkpoint is None or not (checkpoint / "trainable.safetensors").is_file():
        raise NotARunError(f"{run} has no finished checkpoint (checkpoints/latest.txt pointing at a folder with "
                           "trainable.safetensors); finish or resume it with pcdrl train ... --resume")
    try:
        config = load_config(RLTrainConfig, run / "config.yaml")
    except ConfigError as err:
        raise NotARunError(f"{run / 'config.yaml'} is not a valid pcdrl train config: {err}") from None
    return RunRef(run, checkpoint, config)


def check_comparable(runs: list[RunRef]) -> None:
    """Seeds of one experiment: same PCD, data, families and policy; only the seed may differ. Each run is
    named once: `R`, `R/` and `R/checkpoints/step_1` are one run, and counting it thrice would narrow the CIs."""
    seen: dict[Path, RunRef] = {}
    for run in runs:
        key = run.path.resolve()
        if key in seen:
            raise ValueError(f"{seen[key].checkpoint} and {run.checkpoint} are checkpoints of one run, {run.path}; "
                             "pcdrl eval counts each argument as one seed: name each run once")
        seen[key] = run
    first = runs[0].config
    for run in runs[1:]:
        if run.config.policy.kind != first.policy.kind:
            raise ValueError(f"{run.path} trained {run.config.policy.kind} (policy.kind={run.config.policy.kind}) and "
                             f"{runs[0].path} trained {first.policy.kind}; pcdrl eval scores the seeds of one "
                             "experiment, whose rows show one kind of explanation: evaluate the formula runs and the "
                             "concept-set runs in separate `pcdrl eval` calls")
        # A formula run's policy is also its `formula` section (the grammar, truth, the network's sizes).
        extra = ("formula",) if first.policy.kind == "formulas" else ()
        for field in ("pcd", "data", "families", "policy", *extra):
            if getattr(run.config, field) != getattr(first, field):
                raise ValueError(f"{run.path} and {runs[0].path} differ in `{field}`; pcdrl eval compares seeds "
                                 "of one experiment: evaluate different experiments separately")


def _same_source(a, b) -> bool:
    """One PCD or data folder, however the path was spelled (relative to the repository, or absolute)."""
    return a == b or (isinstance(a, str) and isinstance(b, str) and Path(a).resolve() == Path(b).resolve())


def check_matched(main: RunRef, matched: list[RunRef]) -> None:
    """The concept-set runs of a formula eval's matched row (EvalConfig.matched_concepts): concept-set runs of the
    formula run's PCD, data and families, so that their greedy sets explain exactly the items the formula rows are
    scored on; between them, seeds of one experiment (check_comparable)."""
    if main.config.policy.kind != "formulas":
        raise ValueError(f"matched_concepts: {main.path} trained {main.config.policy.kind} (policy.kind="
                         f"{main.config.policy.kind}); the matched concept-set row is for formula runs "
                         "(policy.kind=formulas): leave matched_concepts empty")
    for run in matched:
        if run.config.policy.kind != "concepts":
            raise ValueError(f"matched_concepts: {run.path} trained {run.config.policy.kind} (policy.kind="
                             f"{run.config.policy.kind}); the matched row needs a concept-set run, trained with "
                             "policy.kind=concepts and policy.k near the formulas' mean size (docs/eval.md)")
        for field in ("pcd", "data", "families"):
            theirs, ours = getattr(run.config, field), getattr(main.config, field)
            if not _same_source(theirs, ours):
                raise ValueError(f"matched_concepts: {run.path} was trained with {field}={theirs}, the formula run "
                                 f"{main.path} with {field}={ours}; the matched row explains the formula rows' "
                                 f"items with the same PCD: train the concept run with {field}={ours}")
    try:
        check_comparable(matched)
    except ValueError as err:
        raise ValueError(f"matched_concepts: {err}") from None


def load_concept_policy(run: RunRef, encoder, allowed: torch.Tensor):
    """A concept-set run's ConceptSetPolicy with its checkpoint loaded: its `greedy` top-k is the run's row."""
    from pcdrl.rl.policy import ConceptSetPolicy  # peft: imported only when a concept run is evaluated

    policy = ConceptSetPolicy(encoder, run.config.policy, allowed)
    load_policy_state(policy, run.checkpoint)
    return policy


def load_policy_state(policy, checkpoint: Path) -> None:
    """Load a checkpoint's LoRA, offsets and logit scale into a fresh ConceptSetPolicy (the critic is
    not needed to evaluate)."""
    state = load_file(checkpoint / "trainable.safetensors")
    params = dict(policy.head.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            if name == "buffer::logit_scale":
                policy.logit_scale.copy_(value)
            elif name.startswith("policy."):
                key = name.removeprefix("policy.")
                if key not in params:
                    raise ValueError(f"{checkpoint}: weight {key} does not fit the policy built from the run's "
                                     "config (was the checkpoint made by another version of pcdrl?)")
                params[key].copy_(value)
