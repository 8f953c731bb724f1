"""Read S's residual stream at one layer, batched, without gradients, stopping at that layer."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


class LayerIndexError(ValueError):
    """The requested read layer does not exist in the model."""


class _StopForward(Exception):
    """Raised by the hook once the read layer has run: the rest of S is never computed."""


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a causal LM, through peft and quantization wrappers."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    n_layers = config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.endswith("layers") and len(module) == n_layers:
            return module
    raise ValueError(f"could not find the {n_layers} transformer blocks of {type(model).__name__}")


def check_layer(model: nn.Module, layer: int) -> None:
    n_layers = len(decoder_layers(model))
    if not 0 <= layer < n_layers:
        name = getattr(model.config, "_name_or_path", type(model).__name__)
        raise LayerIndexError(
            f"read_layer={layer} is out of range for {name}, which has {n_layers} layers: "
            f"use 0..{n_layers - 1} (about {n_layers // 2} reads mid-depth)"
        )


@contextlib.contextmanager
def base_weights(model: nn.Module) -> Iterator[None]:
    # S is read without any adapter: a PCD's decoder shares S's weights and carries LoRA.
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield
    else:
        yield


@torch.no_grad()
def read_residual(
    model: nn.Module,
    input_ids: torch.Tensor,
    layer: int,
    positions: slice | torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Residual stream after block ``layer`` for ``input_ids`` [B, T] -> [B, P, d].

    ``positions`` picks the token positions to return (a slice, or a [B, P] index tensor
    for ragged reads); None returns every position.
    """
    check_layer(model, layer)
    block = decoder_layers(model)[layer]
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _StopForward

    handle = block.register_forward_hook(hook)
    try:
        with base_weights(model):
            model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    hidden = captured[0].float()
    if positions is None:
        return hidden
    if isinstance(positions, slice):
        return hidden[:, positions]
    return hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))


def read_residual_batched(
    model: nn.Module,
    input_ids: torch.Tensor,
    layer: int,
    positions: slice | None = None,
    batch_size: int = 32,
    progress=None,
) -> torch.Tensor:
    """``read_residual`` over many equal-length windows [N, T], ``batch_size`` at a time."""
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, len(input_ids), batch_size):
        batch = input_ids[start : start + batch_size].to(device)
        chunks.append(read_residual(model, batch, layer, positions).cpu())
        if progress is not None:
            progress(len(batch))
    return torch.cat(chunks)
