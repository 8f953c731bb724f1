"""Tests of the vLLM backend. They run only in the vLLM venv (`make test-vllm`), one thread, offline.

The repo's tests/conftest.py (torch threads, tiny models) applies here too. Engines are slow to
start on CPU (~30-40 s), so each test module shares one.
"""
from __future__ import annotations

import importlib.util
import os

# Before vLLM is imported: its logging level and its CPU thread binding are read at import/start.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # respect the one thread; don't pin a core
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PCDRL_NO_PROGRESS", "1")

import pytest

MODEL = "smollm2-135m-instruct"


VLLM_MISSING = importlib.util.find_spec("vllm") is None
if VLLM_MISSING:
    # A plain `pytest` in the main venv leaves these tests out rather than failing on them. Under
    # `make test-vllm` a missing vllm leaves no test to run, and pytest's exit code 5 fails the target.
    collect_ignore_glob = ["test_*.py"]


def pytest_terminal_summary(terminalreporter):
    if VLLM_MISSING:
        terminalreporter.write_line(
            "tests/vllm were not collected: vllm is not installed in this Python. "
            "`make test-vllm` builds the .venv-vllm venv and runs them there.",
            yellow=True,
        )


@pytest.fixture(scope="session")
def hf_backend():
    from pcdrl.models.backends.base import BackendConfig
    from pcdrl.models.backends.hf import HFBackend

    backend = HFBackend(BackendConfig(kind="hf", model=MODEL, batch_size=8))
    yield backend
    backend.close()
