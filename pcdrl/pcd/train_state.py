"""Atomic training checkpoints: trainable weights, optimizer, every RNG state, and the step.

Written as safetensors + JSON (no pickle), into a temporary folder that is fsynced and renamed into
place, and pointed at by ``latest.txt`` only once complete: a run killed at any instant resumes from
the last finished checkpoint. If the pointer names a folder that is gone (a kill between the two
renames of a re-saved step), resume falls back to the newest complete checkpoint and says so; if
none is left it fails rather than start again at step 0.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pcdrl.runtime.atomic import atomic_directory, atomic_write_json, atomic_write_text


def trainable_state(module: torch.nn.Module, extra_buffers: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    state = {name: p.detach().contiguous().clone() for name, p in module.named_parameters() if p.requires_grad}
    for name, buffer in (extra_buffers or {}).items():
        state[f"buffer::{name}"] = buffer.detach().contiguous().clone()
    return state


def load_trainable_state(module: torch.nn.Module, state: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> None:
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            if name.startswith("buffer::"):
                buffers[name.removeprefix("buffer::")].copy_(value)
            else:
                params[name].copy_(value)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state_dict["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{index}/{key}"] = value.contiguous()
            else:
                scalars[f"{index}/{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    np_state = np.random.get_state()
    tensors = {"torch_cpu": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64))}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = s
    meta = {"python": _to_json(random.getstate()), "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    random.setstate(_from_json(meta["python"]))
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, gauss))


def _to_json(value: Any) -> Any:
    return [_to_json(v) for v in value] if isinstance(value, (tuple, list)) else value


def _from_json(value: Any) -> Any:
    return tuple(_from_json(v) for v in value) if isinstance(value, list) else value


# Test-only: `PCDRL_CRASH_AT=<stage>` (or `<stage>:<step>`) SIGKILLs the process at that stage of a
# checkpoint save, so tests can check that a kill at any instant leaves a resumable run. Stages, in order:
# files_written, before_rename, after_first_rename (only when re-saving an existing step),
# after_second_rename, after_pointer, mid_prune.
CRASH_ENV = "PCDRL_CRASH_AT"


def _crash_hook(step: int):
    wanted = os.environ.get(CRASH_ENV, "")
    if not wanted:
        return lambda stage: None
    name, _, at = wanted.partition(":")

    def hook(stage: str) -> None:
        if stage == name and (not at or int(at) == step):
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def save_train_state(
    folder: Path,
    step: int,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
    buffers: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``folder/step_XXXXXX`` and point ``folder/latest.txt`` at it; keep the last two.

    Order matters for a kill at any instant: every file and the folder are fsynced and renamed into
    place before the pointer moves, and old checkpoints are pruned only after it has.
    """
    target = folder / f"step_{step:06d}"
    crash = _crash_hook(step)
    with atomic_directory(target, hook=crash) as tmp:
        save_file(trainable_state(module, buffers), tmp / "trainable.safetensors")
        opt_tensors, opt_meta = _optimizer_tensors(optimizer)
        save_file(opt_tensors, tmp / "optimizer.safetensors")
        rng_tensors, rng_meta = _rng_state()
        save_file(rng_tensors, tmp / "rng.safetensors")
        atomic_write_json(tmp / "state.json", {"step": step, "optimizer": opt_meta, "rng": rng_meta, **info})
        crash("files_written")
    atomic_write_text(folder / "latest.txt", target.name + "\n")
    crash("after_pointer")
    _prune(folder, target, crash)
    return target


def _prune(folder: Path, target: Path, crash) -> None:
    """Keep the last two checkpoints; drop older ones and the leftovers of killed saves.

    A folder is renamed to a hidden name before it is removed, so that a kill mid-removal never
    leaves a half-deleted ``step_*`` folder that looks like a checkpoint.
    """
    for old in sorted(folder.glob("step_*"))[:-2]:
        if old != target:
            trash = old.with_name(f".{old.name}.trash")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(old, trash)
            crash("mid_prune")
            shutil.rmtree(trash, ignore_errors=True)
    step = _step_of(target.name)
    for leftover in folder.glob(".step_*"):
        if leftover.is_dir() and (_step_of(leftover.name) or 0) <= step:
            shutil.rmtree(leftover, ignore_errors=True)


class CheckpointError(ValueError):
    """A run whose checkpoints cannot be resumed (and must not silently restart at step 0)."""

    def __init__(self, fact: str, advice: str):
        super().__init__(f"{fact}: {advice}")
        self.fact = fact


def _step_of(name: str) -> int | None:
    """The step in ``step_000012`` or in the hidden ``.step_000012.old`` a killed save leaves."""
    match = re.fullmatch(r"\.?step_(\d+)(\.old|\..*\.tmp|\.trash)?", name)
    return int(match.group(1)) if match else None


def _safetensors_complete(path: Path) -> bool:
    """The header parses and the file is as long as the header says: not truncated."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size == 8 + length + end
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return False


def is_complete(path: Path) -> bool:
    """A checkpoint folder that can be loaded: state.json parses and no weights file is truncated."""
    try:
        info = json.loads((path / "state.json").read_text())
        if not isinstance(info, dict) or not isinstance(info.get("step"), int):
            return False
    except (OSError, ValueError):
        return False
    return all(_safetensors_complete(path / name) for name in CHECKPOINT_FILES)


CHECKPOINT_FILES = ("trainable.safetensors", "optimizer.safetensors", "rng.safetensors")


def complete_checkpoints(folder: Path) -> list[Path]:
    """Every loadable checkpoint in ``folder``, oldest first: ``step_*`` folders, and the ``.step_*.old``
    a save killed between its two renames leaves (the complete previous version of that step)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and (p.name.startswith("step_") or
                                                             (p.name.startswith(".step_") and p.name.endswith(".old")))]
    found = [p for p in found if _step_of(p.name) is not None and is_complete(p)]
    # The step, then the plain folder after its `.old` (on a tie the plain one is newer).
    return sorted(found, key=lambda p: (_step_of(p.name), not p.name.startswith(".")))


def resolve_checkpoint(folder: Path) -> tuple[Path | None, str | None]:
    """The checkpoint to resume from, and a warning when it is not the one ``latest.txt`` names.

    ``latest.txt`` is trusted when it names a complete folder. When it names one that is gone or
    incomplete, the newest complete checkpoint is used instead; when there is none, this raises:
    a run that had checkpoints must never quietly start again at step 0.
    """
    folder = Path(folder)
    pointer = folder / "latest.txt"
    named = pointer.read_text().strip() if pointer.is_file() else ""
    if named and is_complete(folder / named):
        return folder / named, None
    complete = complete_checkpoints(folder)
    newest = complete[-1] if complete else None
    if not named and not pointer.is_file():
        if newest is None:
            return None, None
        return newest, (f"{pointer} is missing; resuming from the newest complete checkpoint, {newest} "
                        f"(step {_step_of(newest.name)})")
    state = "incomplete" if named and (folder / named).exists() else "missing"
    what = f"{pointer} points at {named}, which is {state}" if named else f"{pointer} is empty"
    if newest is None:
        raise CheckpointError(f"{what}, and no complete checkpoint is left in {folder}",
                              "this run cannot be resumed; start a new --out, or pass --force to move this one aside")
    return newest, f"{what}; resuming from the newest complete checkpoint, {newest} (step {_step_of(newest.name)})"


def check_resume(run: Path, resume: bool) -> str | None:
    """Before any model loads: without --resume, refuse a run that has checkpoints; with it, make sure there
    is a checkpoint to resume (CheckpointError if latest.txt dangles and none is left), or return a warning
    that says plainly that the run starts at step 0."""
    from pcdrl.runtime.rundir import is_free

    root = run / "checkpoints"
    # pcdrl train keeps its checkpoints in checkpoints/, pcdrl pretrain one folder per phase under it.
    folders = [root, *(p for p in root.iterdir() if p.is_dir() and "step_" not in p.name)] if root.is_dir() else []
    started = [f for f in folders if (f / "latest.txt").is_file() or complete_checkpoints(f)]
    if not resume:
        if started:
            raise CheckpointError(f"--out {run} already holds a run with checkpoints",
                                  "pass --resume to continue it, choose a new --out, or pass --force to move it aside "
                                  "(nothing is deleted)")
        return None
    for folder in started:
        resolve_checkpoint(folder)  # raises when latest.txt dangles and no complete checkpoint is left
    if started:
        return None
    if is_free(run):
        return f"--resume: {run} is new or empty, so there is nothing to resume; starting a new run"
    return (f"--resume: {run} holds this run but no finished checkpoint (it stopped before its first save); "
            "starting it at step 0")


def latest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint to resume from (see resolve_checkpoint); a fallback is announced on stderr."""
    path, warning = resolve_checkpoint(folder)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return path


def load_train_state(
    path: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer, buffers: dict[str, torch.Tensor] | None = None
) -> dict[str, Any]:
    """Restore weights, optimizer and RNG from ``path``; return its state.json."""
    info = json.loads((path / "state.json").read_text())
    load_trainable_state(module, load_file(path / "trainable.safetensors"), buffers or {})
    _load_optimizer(optimizer, load_file(path / "optimizer.safetensors"), info["optimizer"])
    _set_rng_state(load_file(path / "rng.safetensors"), info["rng"])
    return info
