"""What every backend does: greedy generation for S's behaviour, and option scoring for judges.

Scoring returns, for each prefix, the summed log-probability of each option's tokens given that
prefix. The prefix is tokenized as a prompt (with the tokenizer's BOS, if it adds one) and each
option separately without special tokens, so an option's tokens are the same whatever precedes
it. Backends that share a prefix across its options (and across repeated prefixes) reuse its
key-value cache instead of recomputing it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence


class BackendError(RuntimeError):
    """A backend could not serve a request (server down, bad response, engine missing)."""


Prompt = str | Sequence[int]


@dataclass
class BackendConfig:
    """How to run a model for generation and scoring."""

    kind: str = "hf"
    """`hf` (transformers, the default), `vllm` (in-process engine) or `http` (OpenAI-compatible server)."""
    model: str = "smollm2-135m-instruct"
    """An offline default name, a local folder or a hub id. For `http`, the model name the server knows."""
    quantize: str = "none"
    """`hf` only: none | int8 (CPU) | bnb8 | bnb4 (bitsandbytes)."""
    device: str = "cpu"
    """`hf` only: torch device."""
    dtype: str = "auto"
    """`hf` only: auto | float32 | bfloat16 | fast. `auto` is float32 on CPU and bfloat16 on CUDA. bfloat16 on a
    CPU with AVX-512 BF16 scored 1.76x faster than float32 with the same pick on 95% of items (docs/benchmarks.md); a
    CPU without it is refused (bfloat16 runs ~6x slower there). `fast` is bfloat16 wherever it runs natively (CUDA,
    or a CPU with AVX-512 BF16 or AMX) and float32 elsewhere: for a training judge, where speed beats exactness."""
    batch_size: int = 8
    """Prefixes per forward pass (`hf`) or requests per HTTP call (`http`)."""
    base_url: str = ""
    """`http` only: the server root, e.g. http://127.0.0.1:8000/v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """`http` only: the environment variable holding the API key (may be unset for local servers)."""
    api_key_over_http: bool = False
    """`http` only: send the API key even over plain http to a host that is not loopback. Off by default: a bearer
    token sent in the clear can be read by anyone on the way, so the key goes only over https or to 127.0.0.1, ::1
    or localhost, and is otherwise withheld with a warning."""
    timeout_s: float = 60.0
    """`http` only: seconds before one request counts as failed."""
    max_retries: int = 4
    """`http` only: retries after the first failure, with exponential backoff."""
    backoff_s: float = 0.5
    """`http` only: the first backoff; it doubles on each retry."""
    max_model_len: int = 1024
    """`vllm` only: the longest prompt plus generation, in tokens."""
    kv_cache_gb: float = 1.0
    """`vllm` only: KV-cache space (GiB); on CPU this sets VLLM_CPU_KVCACHE_SPACE."""
    tokenizer: str = ""
    """`http` only: a local tokenizer (name or folder). When set, scoring sends token ids (prefix and option
    tokenized apart, exactly as `hf` does); when empty, the server tokenizes prefix+option jointly, so options
    should start with a space."""

    def __post_init__(self) -> None:
        from pcdrl.runtime.config_loader import ConfigError, at_least, finite_numbers, one_of, positive
        from pcdrl.models.registry import model_name

        finite_numbers(self)
        one_of("backend.kind", self.kind, VALID_KINDS)
        if self.quantize not in VALID_QUANTIZE:
            raise ConfigError(f"backend.quantize: '{self.quantize}' is not one of {', '.join(VALID_QUANTIZE)} "
                              "(int8 is CPU only; bnb8/bnb4 need bitsandbytes)")
        if self.batch_size < 1:
            raise ConfigError(f"backend.batch_size: must be at least 1, got {self.batch_size}")
        one_of("backend.dtype", self.dtype, VALID_DTYPES)
        if self.dtype in ("bfloat16", "fast") and self.quantize != "none":
            raise ConfigError(f"backend.dtype: {self.dtype} with quantize={self.quantize}; a quantized model keeps its "
                              "own compute type, so leave dtype at auto")
        self._check_device()
        positive("backend.timeout_s", self.timeout_s)
        at_least("backend.max_retries", self.max_retries, 0)
        at_least("backend.backoff_s", self.backoff_s, 0.0)
        at_least("backend.max_model_len", self.max_model_len, 1)
        positive("backend.kv_cache_gb", self.kv_cache_gb)
        if self.kind == "http" and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"backend.base_url: kind http needs the server root as an http(s) URL, e.g. "
                              f"http://127.0.0.1:8000/v1, got {self.base_url!r}")
        # The model (or, for http, the local tokenizer) must be loadable from here; `model` empty means "the
        # caller's default" where a caller allows it (data build's generation.model).
        names = [("tokenizer", self.tokenizer)] if self.kind == "http" else [("model", self.model)]
        for field_name, name in names:
            if name:
                model_name(f"backend.{field_name}", name)

    def _check_device(self) -> None:
        import torch

        from pcdrl.runtime.config_loader import ConfigError

        try:
            torch.device(self.device)
        except (RuntimeError, TypeError, ValueError):
            raise ConfigError(f"backend.device: {self.device!r} is not a torch device; use cpu, cuda, cuda:1 or "
                              "mps") from None


VALID_KINDS = ("hf", "vllm", "http")
VALID_QUANTIZE = ("none", "int8", "bnb8", "bnb4")
VALID_DTYPES = ("auto", "float32", "bfloat16", "fast")


class Backend(ABC):
    """A loaded model that can generate greedily and score options."""

    config: BackendConfig

    @property
    def name(self) -> str:
        return f"{self.config.kind}:{self.config.model}"

    @abstractmethod
    def generate(self, prompts: list[Prompt], max_new_tokens: int, ignore_eos: bool = False) -> list[str]:
        """Greedy continuations (new text only). A prompt is text or token ids; ids are used as given."""

    @abstractmethod
    def score_options(self, prefixes: list[str], options: list[list[str]]) -> list[list[float]]:
        """log p(option | prefix), summed over the option's tokens, for every option of every prefix."""

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """A prompt's tokens: text with the tokenizer's default special tokens (its BOS, if any); ids as given.

        Needs ``self.tokenizer``; every backend that tokenizes locally uses this, so all score alike.
        """
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt)["input_ids"])
        return [int(t) for t in prompt]

    def option_ids(self, option: str) -> list[int]:
        """An option's tokens, without special tokens, the same whatever prefix precedes it."""
        ids = list(self.tokenizer(option, add_special_tokens=False)["input_ids"])
        if not ids:
            raise ValueError(f"option {option!r} is empty after tokenization")
        return ids

    def close(self) -> None:
        """Release the model or connection (engines hold memory and processes)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_options(prefixes: list[str], options: list[list[str]]) -> None:
    if len(prefixes) != len(options):
        raise ValueError(f"{len(prefixes)} prefixes but {len(options)} option lists")
    for row, opts in enumerate(options):
        if not opts:
            raise ValueError(f"prefix {row} has no options to score")
        if any(not o for o in opts):
            raise ValueError(f"prefix {row} has an empty option: {opts!r}")
