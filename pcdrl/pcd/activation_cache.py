"""A disk cache of S's activations, so pretraining runs S once per window, not once per epoch.

The key hashes the model's identity, the read layer, the read positions and the exact token
ids of the windows: a different corpus, tokenizer or window layout can never hit a stale entry.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from pcdrl.models.cache import cache_root


def cache_key(model_id: str, layer: int, positions: slice, input_ids: torch.Tensor) -> str:
    digest = hashlib.sha256()
    digest.update(f"{model_id}|layer={layer}|pos={positions.start}:{positions.stop}|".encode())
    digest.update(str(tuple(input_ids.shape)).encode())
    digest.update(input_ids.to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def cached_activations(
    model_id: str,
    layer: int,
    positions: slice,
    input_ids: torch.Tensor,
    compute: Callable[[], torch.Tensor],
    enabled: bool = True,
) -> tuple[torch.Tensor, bool]:
    """Load activations for these windows from the cache, or ``compute()`` and store them.

    Returns (activations, hit).
    """
    if not enabled:
        return compute(), False
    path = cache_root() / "activations" / f"{cache_key(model_id, layer, positions, input_ids)}.safetensors"
    if path.is_file():
        return load_file(path)["activations"], True
    activations = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file({"activations": activations.contiguous()}, tmp, metadata={"model": model_id, "layer": str(layer)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return activations, False
