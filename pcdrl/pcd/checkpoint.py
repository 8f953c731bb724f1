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

from safetensors import safe_open
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
    """The PCDConfig and d_model of a checkpoint folder, after checking that every part is there and that the
    encoder's tensors fit the config: a bad folder fails here, before S (hundreds of MB) is loaded."""
    path = Path(path)
    missing = [name for name in REQUIRED if not (path / name).exists()]
    if missing:
        raise CheckpointError(
            f"{path} is not a PCD checkpoint: missing {', '.join(missing)} "
            f"(a checkpoint holds {', '.join(REQUIRED)}; `pcdrl pretrain` writes one to RUN/pcd)"
        )
    try:
        meta = json.loads((path / "config.json").read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}/config.json is not valid JSON ({err}); the checkpoint is damaged: "
                              "copy it again or rerun `pcdrl pretrain`") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}/config.json has format {found!r}; this version reads {FORMAT!r}")
    for key in ("pcd", "d_model"):
        if key not in meta:
            raise CheckpointError(f"{path}/config.json has no '{key}' entry; the checkpoint is damaged: "
                                  "copy it again or rerun `pcdrl pretrain`")
    config = from_dict(PCDConfig, meta["pcd"], source=str(path / "config.json"))
    d_model = int(meta["d_model"])
    _check_encoder_file(path / "encoder.safetensors", config, d_model)
    return config, d_model


def _check_encoder_file(file: Path, config: PCDConfig, d_model: int) -> None:
    """The encoder's safetensors header is readable and its weight has the config's shape (reads the header only)."""
    try:
        with safe_open(file, framework="pt") as tensors:
            shape = tensors.get_slice("W_enc.weight").get_shape() if "W_enc.weight" in tensors.keys() else None
    except Exception as err:  # safetensors raises its own error types for a truncated or empty file
        raise CheckpointError(f"{file} is not a readable safetensors file ({type(err).__name__}: {err}); the "
                              "checkpoint is damaged (an interrupted copy?): copy it again or rerun `pcdrl pretrain`") from None
    if shape is None:
        raise CheckpointError(f"{file} holds no W_enc.weight; it is not a PCD encoder")
    if list(shape) != [config.n_concepts, d_model]:
        raise CheckpointError(f"{file} holds W_enc.weight of shape {list(shape)}, but config.json says "
                              f"pcd.n_concepts={config.n_concepts} and d_model={d_model}; the folder mixes two "
                              "checkpoints: copy it again or rerun `pcdrl pretrain`")


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
