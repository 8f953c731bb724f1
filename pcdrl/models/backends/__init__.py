"""Backends for running a model: `hf` (default), `vllm` (imported lazily) and `http`."""
from __future__ import annotations

from pcdrl.models.backends.base import VALID_KINDS, Backend, BackendConfig, BackendError


def make_backend(config: BackendConfig) -> Backend:
    """Build the backend ``config.kind`` names; vLLM and HTTP code is imported only when asked for."""
    if config.kind == "hf":
        from pcdrl.models.backends.hf import HFBackend

        return HFBackend(config)
    if config.kind == "vllm":
        from pcdrl.models.backends.vllm import VLLMBackend

        return VLLMBackend(config)
    if config.kind == "http":
        from pcdrl.models.backends.http import HTTPBackend

        return HTTPBackend(config)
    raise ValueError(f"backend kind '{config.kind}' is unknown; choose one of {', '.join(VALID_KINDS)}")


__all__ = ["Backend", "BackendConfig", "BackendError", "make_backend"]
