"""Load a causal LM and its tokenizer by name: an offline default, a local folder or a hub id."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from pcdrl.models.cache import converted_folder
from pcdrl.models.registry import OFFLINE_MODELS, ModelNotAvailableError, check_model_name

Quantization = Literal["none", "int8", "bnb8", "bnb4"]


@dataclass(frozen=True)
class ModelInfo:
    """What callers need to know about a loaded model without poking at its config."""

    name: str
    path: str
    num_layers: int
    hidden_size: int
    vocab_size: int


def resolve_model_path(name: str) -> str:
    """An offline default's converted fp32 folder, else ``name`` itself (local folder or hub id).

    A name that cannot load here (see `check_model_name`) fails now, not after the hub's ~50 s of retries.
    """
    if name in OFFLINE_MODELS:
        return str(converted_folder(OFFLINE_MODELS[name]))
    check_model_name(name)
    return name


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise _not_found(name, err) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    name: str,
    quantize: Quantization = "none",
    device: str | torch.device = "cpu",
    trust_remote_code: bool = False,
    dtype: str = "float32",
):
    """Load ``name`` in fp32 (or bf16, or quantized, for frozen models) in eval mode.

    ``dtype`` is float32, bfloat16, auto (bfloat16 on CUDA, float32 elsewhere) or fast; see `resolve_dtype`.

    ``int8`` is torch's dynamic int8 for CPU; ``bnb8``/``bnb4`` use bitsandbytes.
    Quantized models are for frozen use (activations, judges, references): their weights
    are not meant to be trained.
    """
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name)
    compute = resolve_dtype(dtype, device)
    kwargs: dict = {"dtype": torch.float32, "trust_remote_code": trust_remote_code}
    if quantize in ("bnb8", "bnb4"):
        kwargs["quantization_config"] = _bnb_config(quantize)
        kwargs["device_map"] = {"": str(device)}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as err:
        raise _not_found(name, err) from err
    if quantize not in ("bnb8", "bnb4"):
        model.to(device=device, dtype=compute if quantize == "none" else torch.float32)
    if quantize == "int8":
        model = quantize_int8_dynamic(model)
    model.eval()
    return model


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (AVX-512 BF16 or AMX); Linux flags only."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, device: str | torch.device) -> torch.dtype:
    """auto: bfloat16 on CUDA, float32 elsewhere. fast: bfloat16 wherever the hardware runs it natively (CUDA, or a
    CPU with AVX-512 BF16 or AMX), float32 elsewhere. bfloat16 on a CPU without bf16 instructions is refused: it was
    measured ~6x slower than float32 there (docs/benchmarks.md), while with AVX-512 BF16 it is ~1.8x faster."""
    on_cuda = torch.device(device).type == "cuda"
    if dtype == "auto":
        return torch.bfloat16 if on_cuda else torch.float32
    if dtype == "fast":
        return torch.bfloat16 if on_cuda or (torch.device(device).type == "cpu" and cpu_has_bf16()) else torch.float32
    if dtype == "float32":
        return torch.float32
    if dtype != "bfloat16":
        raise ValueError(f"dtype: '{dtype}' is not one of auto, float32, bfloat16, fast")
    if torch.device(device).type == "cpu" and not cpu_has_bf16():
        raise ModelNotAvailableError(
            "dtype=bfloat16 on a CPU without AVX-512 BF16 or AMX: bfloat16 runs about 6x slower than float32 on "
            "such CPUs; use dtype=float32 (or auto)")
    return torch.bfloat16


def model_info(name: str, model) -> ModelInfo:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return ModelInfo(
        name=name,
        path=str(getattr(model, "name_or_path", name)),
        num_layers=int(config.num_hidden_layers),
        hidden_size=int(config.hidden_size),
        vocab_size=int(config.vocab_size),
    )


def quantize_int8_dynamic(model):
    """Dynamic int8 weights for every nn.Linear (CPU only); about 2x faster forwards here."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch marks the quantized-tensor API deprecated; it is still the fastest int8 path on CPU.
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _bnb_config(quantize: str):
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise ModelNotAvailableError(
            f"quantize={quantize} needs bitsandbytes: pip install 'pcd-rl[quant]' (or pip install bitsandbytes)"
        ) from err
    from transformers import BitsAndBytesConfig

    if quantize == "bnb8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)


def _not_found(name: str, err: Exception) -> ModelNotAvailableError:
    known = ", ".join(sorted(OFFLINE_MODELS))
    where = "local folder" if Path(name).exists() else "local folder or hub id"
    return ModelNotAvailableError(
        f"could not load model '{name}' as a {where}: {err}. "
        f"Offline defaults are: {known}. A hub id needs network access or a warm Hugging Face cache."
    )
