"""The PCD checkpoint folder: what the RL stage starts from. `PCD.from_pretrained` (pcd/model.py) rebuilds a PCD
from the parts read here; this module knows the format only, not the model.

    config.json          format version, PCDConfig, d_model, the pretraining corpus/window/seed
    encoder.safetensors  W_enc, b_enc, W_emb, input normalisation, dead-concept counters
    decoder/             the peft LoRA adapter over S (S itself is loaded by name)
    concepts.json        labels, auto-interp scores and activation statistics per concept

Everything is safetensors or JSON: loading never unpickles.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from safetensors.torch import load_file, save_file

from pcdrl.runtime.atomic import atomic_directory, atomic_write_json
from pcdrl.runtime.config_loader import from_dict
from pcdrl.pcd.config import PCDConfig

FORMAT = "pcd-rl/pcd-v1"
REQUIRED = ("config.json", "encoder.safetensors", "decoder", "concepts.json")


class CheckpointError(ValueError):
    """A folder is not a PCD checkpoint, or one from an incompatible version."""


def save_pcd(pcd, path: str | Path) -> None:
    """Write the checkpoint folder atomically: readers see the old one or the complete new one."""
    with atomic_directory(path) as tmp:
        meta = {"format": FORMAT, "pcd": asdict(pcd.config), "d_model": pcd.encoder.d_model, "training_data": pcd.training_data}
        atomic_write_json(tmp / "config.json", meta)
        state = {k: v.detach().contiguous().cpu() for k, v in pcd.encoder.state_dict().items()}
        save_file(state, tmp / "encoder.safetensors")
        pcd.decoder.save_pretrained(tmp / "decoder", safe_serialization=True)
        atomic_write_json(tmp / "concepts.json", pcd.concepts or {"concepts": []})


def read_config(path: str | Path) -> tuple[PCDConfig, int]:
    path = Path(path)
    missing = [name for name in REQUIRED if not (path / name).exists()]
    if missing:
        raise CheckpointError(
            f"{path} is not a PCD checkpoint: missing {', '.join(missing)} "
            f"(a checkpoint holds {', '.join(REQUIRED)}; `pcdrl pretrain` writes one to RUN/pcd)"
        )
    meta = json.loads((path / "config.json").read_text())
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}/config.json has format {meta.get('format')!r}; this version reads {FORMAT!r}")
    return from_dict(PCDConfig, meta["pcd"], source=str(path / "config.json")), int(meta["d_model"])


def read_parts(path: str | Path, d_model: int, subject_name: str) -> tuple[dict, dict, dict]:
    """The encoder's tensors, concepts.json and the pretraining-data record of a checkpoint whose config has
    been read; refuses a checkpoint trained on a model of another width (``d_model`` is the subject's)."""
    path = Path(path)
    _, saved_d = read_config(path)
    if saved_d != d_model:
        raise CheckpointError(
            f"{path} was trained on a model with d_model={saved_d}, but subject {subject_name} has {d_model}"
        )
    state = load_file(path / "encoder.safetensors")
    concepts = json.loads((path / "concepts.json").read_text())
    training_data = json.loads((path / "config.json").read_text()).get("training_data") or {}
    return state, concepts, training_data


def write_concepts(path: str | Path, concepts: dict) -> None:
    """Replace a checkpoint's concepts.json (labels, scores) in place, atomically."""
    read_config(path)
    atomic_write_json(Path(path) / "concepts.json", concepts)
