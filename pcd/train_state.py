"""Atomic training checkpoints: trainable weights, optimizer, every RNG state, and the step.

Written as safetensors + JSON (no pickle), into a temporary folder renamed into place, and
pointed at by ``latest.txt`` only once complete: a run killed at any instant resumes from the
last finished checkpoint.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from configs.atomic import atomic_directory, atomic_write_json, atomic_write_text


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


def save_train_state(
    folder: Path,
    step: int,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
    buffers: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``folder/step_XXXXXX`` and point ``folder/latest.txt`` at it."""
    target = folder / f"step_{step:06d}"
    with atomic_directory(target) as tmp:
        save_file(trainable_state(module, buffers), tmp / "trainable.safetensors")
        opt_tensors, opt_meta = _optimizer_tensors(optimizer)
        save_file(opt_tensors, tmp / "optimizer.safetensors")
        rng_tensors, rng_meta = _rng_state()
        save_file(rng_tensors, tmp / "rng.safetensors")
        atomic_write_json(tmp / "state.json", {"step": step, "optimizer": opt_meta, "rng": rng_meta, **info})
    atomic_write_text(folder / "latest.txt", target.name + "\n")
    for old in sorted(folder.glob("step_*"))[:-2]:  # keep the last two
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(folder: Path) -> Path | None:
    pointer = folder / "latest.txt"
    if not pointer.is_file():
        return None
    path = folder / pointer.read_text().strip()
    return path if (path / "state.json").is_file() else None


def load_train_state(
    path: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer, buffers: dict[str, torch.Tensor] | None = None
) -> dict[str, Any]:
    """Restore weights, optimizer and RNG from ``path``; return its state.json."""
    info = json.loads((path / "state.json").read_text())
    load_trainable_state(module, load_file(path / "trainable.safetensors"), buffers or {})
    _load_optimizer(optimizer, load_file(path / "optimizer.safetensors"), info["optimizer"])
    _set_rng_state(load_file(path / "rng.safetensors"), info["rng"])
    return info
