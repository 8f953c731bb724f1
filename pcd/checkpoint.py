"""The PCD checkpoint folder: what the RL stage starts from.

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

from configs.atomic import atomic_directory, atomic_write_json
from configs.loader import from_dict
from pcd.config import PCDConfig

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


def load_pcd(path: str | Path, subject=None, trainable: bool = False):
    """Rebuild a PCD from its folder; S is loaded by the name in config.json unless given."""
    from peft import PeftModel

    from models import load_model, load_tokenizer
    from pcd.encoder import ConceptEncoder
    from pcd.model import PCD

    path = Path(path)
    config, d_model = read_config(path)
    subject = subject if subject is not None else load_model(config.subject_model)
    actual_d = subject.get_input_embeddings().weight.shape[1]
    if actual_d != d_model:
        raise CheckpointError(
            f"{path} was trained on a model with d_model={d_model}, but subject {config.subject_model} has {actual_d}"
        )
    decoder = PeftModel.from_pretrained(subject, path / "decoder", is_trainable=trainable)
    encoder = ConceptEncoder(d_model, config.n_concepts, config.k)
    encoder.load_state_dict(load_file(path / "encoder.safetensors"))
    pcd = PCD(config, decoder, load_tokenizer(config.subject_model), encoder)
    pcd.concepts = json.loads((path / "concepts.json").read_text())
    pcd.training_data = json.loads((path / "config.json").read_text()).get("training_data") or {}
    return pcd


def write_concepts(path: str | Path, concepts: dict) -> None:
    """Replace a checkpoint's concepts.json (labels, scores) in place, atomically."""
    read_config(path)
    atomic_write_json(Path(path) / "concepts.json", concepts)
