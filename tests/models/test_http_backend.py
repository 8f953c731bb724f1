"""The HTTP backend against real loopback servers: our completions server (tiny model and SmolLM2),
servers that are down, silent or failing, and the retry schedule.

Text-mode scoring lets the server tokenize prefix + option jointly, while `HFBackend` tokenizes
them apart; the two agree when the option starts a new token. Options here start with a space
(a token boundary for BPE and for the tiny char-level tokenizer), so the scores must match.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pcdrl.models.backends import make_backend
from pcdrl.models.backends.base import BackendConfig, BackendError
from pcdrl.models.backends.hf import HFBackend
from pcdrl.models.backends.http import HTTPBackend, TransientError, option_logprob, with_retries
from pcdrl.models.server import serve_in_thread

PREFIXES = ["the cat", "hello there", "the cat", "Q: is it? A:"]
OPTIONS = [[" sat", " ran away"], [" Y", " No!"], [" sat", " on"], [" yes", " no"]]


def flat(rows: list[list[float]]) -> list[float]:
    return [x for row in rows for x in row]


def http_config(url: str, **overrides) -> BackendConfig:
    fields = dict(kind="http", base_url=url, timeout_s=10.0, max_retries=0, backoff_s=0.01, batch_size=2)
    return BackendConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir):
    hf = HFBackend(BackendConfig(model=tiny_model_dir, batch_size=3))
    server, url = serve_in_thread(hf)
    yield hf, server, url
    server.shutdown()
    server.server_close()


# ----------------------------------------------------------------- agreement with HFBackend
def test_text_scores_match_hf_backend(tiny_server, tiny_model_dir):
    hf, _, url = tiny_server
    backend = make_backend(http_config(url, model=tiny_model_dir))
    assert isinstance(backend, HTTPBackend)
    got, want = backend.score_options(PREFIXES, OPTIONS), hf.score_options(PREFIXES, OPTIONS)
    assert flat(got) == pytest.approx(flat(want), abs=1e-4)


def test_token_id_scores_match_hf_backend_for_any_option(tiny_server, tiny_model_dir):
    """With a local tokenizer the client sends ids, so even options without a leading space match."""
    hf, _, url = tiny_server
    backend = HTTPBackend(http_config(url, model=tiny_model_dir, tokenizer=tiny_model_dir))
    options = [["sat", "x"], ["Y", " No!"], ["!", " on"], [" yes", "no"]]
    got, want = backend.score_options(PREFIXES, options), hf.score_options(PREFIXES, options)
    assert flat(got) == pytest.approx(flat(want), abs=1e-4)


def test_generation_matches_hf_backend(tiny_server, tiny_model_dir):
    hf, _, url = tiny_server
    backend = HTTPBackend(http_config(url, model=tiny_model_dir))
    prompts = ["abc", "a longer one", [5, 6, 7, 8]]  # text and token ids, mixed
    assert backend.generate(prompts, 6) == hf.generate(prompts, 6)
    forced = backend.generate(prompts, 6, ignore_eos=True)
    assert forced == hf.generate(prompts, 6, ignore_eos=True)


def test_scoring_dedupes_pairs_and_batches_requests(tiny_server, tiny_model_dir):
    _, server, url = tiny_server
    backend = HTTPBackend(http_config(url, model=tiny_model_dir, batch_size=2))
    before = server.request_count
    scores = backend.score_options(["ab", "ab", "cd"], [[" x", " y"], [" y", " x"], [" x", " x"]])
    assert server.request_count - before == 2  # 3 distinct pairs, 2 per request
    assert scores[0] == scores[1][::-1] and scores[2][0] == scores[2][1]


def test_echo_logprobs_follow_openai_shape(tiny_server, tiny_model_dir):
    _, _, url = tiny_server
    backend = HTTPBackend(http_config(url, model=tiny_model_dir))
    reply = backend.request({"prompt": [[10, 11, 12], [13, 14]], "echo": True, "logprobs": 2, "max_tokens": 2,
                             "temperature": 0})
    for choice, n_prompt in zip(reply["choices"], (3, 2)):
        lp = choice["logprobs"]
        assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
        assert all(v <= 0 for v in lp["token_logprobs"][1:])
        assert "".join(lp["tokens"]) == choice["text"]
        assert lp["text_offset"] == [sum(map(len, lp["tokens"][:i])) for i in range(len(lp["tokens"]))]
        assert n_prompt <= len(lp["tokens"]) <= n_prompt + 2
        assert all(len(top) == 2 for top in lp["top_logprobs"][1:])


def test_vllm_style_offsets_with_bos_text():
    """vLLM counts the BOS token's text in text_offset though the echoed text leaves it out."""
    logprobs = {"tokens": ["<bos>", "The", " cat", " sat", " down", "!"],
                "token_logprobs": [None, -1.0, -2.0, -3.0, -4.0, -9.0],
                "text_offset": [0, 5, 8, 12, 16, 21]}
    assert option_logprob(logprobs, "The cat", " sat down") == -7.0  # the generated "!" is left out
    assert option_logprob(logprobs, "The", " cat") == -2.0


def test_option_at_the_start_of_the_prompt_has_no_score(tiny_server, tiny_model_dir):
    """The tiny tokenizer adds no BOS, so an empty prefix leaves the option's first token unscored."""
    _, _, url = tiny_server
    with pytest.raises(BackendError, match="null log-prob .* the prefix is empty"):
        HTTPBackend(http_config(url, model=tiny_model_dir)).score_options([""], [[" a"]])


# ----------------------------------------------------------------- errors that must not be retried
def test_bad_request_fails_at_once_with_the_server_message(tiny_server, tiny_model_dir):
    _, server, url = tiny_server
    backend = HTTPBackend(http_config(url, model=tiny_model_dir, max_retries=3, backoff_s=5.0))
    before, start = server.request_count, time.monotonic()
    with pytest.raises(BackendError, match=r"HTTP 400: temperature=0.7 is not supported.*greedily"):
        backend.request({"prompt": "ab", "temperature": 0.7})
    assert server.request_count - before == 1 and time.monotonic() - start < 2.0


def test_unknown_model_is_a_404_naming_both_models(tiny_server, tiny_model_dir):
    _, _, url = tiny_server
    backend = HTTPBackend(http_config(url, model="no-such-model", max_retries=3, backoff_s=5.0))
    with pytest.raises(BackendError, match=r"HTTP 404: model 'no-such-model' is not served.*tiny"):
        backend.generate(["ab"], 2)


@pytest.mark.parametrize("payload, message", [
    ({"prompt": []}, "prompt must be"),
    ({"prompt": [1, "a"]}, "prompt must be"),
    ({"prompt": [[10**9]]}, "token ids must lie in"),
    ({"prompt": "ab", "max_tokens": -1}, "max_tokens must be a non-negative integer"),
    ({"prompt": "ab", "stream": True}, "stream=True is not supported"),
])
def test_server_refuses_malformed_requests(tiny_server, tiny_model_dir, payload, message):
    _, _, url = tiny_server
    with pytest.raises(BackendError, match=message):
        HTTPBackend(http_config(url, model=tiny_model_dir)).request(payload)


# ----------------------------------------------------------------- retries
def test_retry_schedule_doubles_and_gives_up():
    calls, sleeps = [], []

    def send():
        calls.append(1)
        raise TransientError("HTTP 503: busy")

    with pytest.raises(BackendError) as err:
        with_retries(send, max_retries=3, backoff_s=0.5, url="http://h:1/v1/completions", sleep=sleeps.append)
    assert len(calls) == 4 and sleeps == [0.5, 1.0, 2.0]
    assert "after 4 attempts" in str(err.value) and "HTTP 503: busy" in str(err.value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_down_raises_after_backoff(caplog):
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = HTTPBackend(http_config(url, model="m", max_retries=2, backoff_s=0.1, timeout_s=2.0))
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="pcdrl.models.backends.http"), pytest.raises(BackendError) as err:
        backend.generate(["hi"], 2)
    elapsed = time.monotonic() - start
    message = str(err.value)
    assert f"{url}/completions failed after 3 attempts" in message
    assert "cannot connect" in message and "Is the server up" in message and "/v1" in message
    assert 0.3 <= elapsed < 3.0  # slept 0.1 + 0.2; a refused connection returns at once
    assert len([r for r in caplog.records if "retrying in" in r.getMessage()]) == 2


def test_silent_server_times_out_and_is_retried():
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept_and_say_nothing():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    backend = HTTPBackend(http_config(url, model="m", max_retries=1, backoff_s=0.05, timeout_s=0.3))
    start = time.monotonic()
    try:
        with pytest.raises(BackendError, match=r"after 2 attempts; last error: timed out after 0.3s"):
            backend.score_options(["a"], [[" b"]])
        elapsed = time.monotonic() - start
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert len(accepted) == 2
    assert 0.65 <= elapsed < 3.0  # two 0.3 s timeouts and one 0.05 s backoff


class FlakyHandler(BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` POSTs, then a canned completion; records what it saw."""

    def do_POST(self):  # noqa: N802
        server = self.server
        server.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        server.auth.append(self.headers.get("Authorization"))
        if len(server.bodies) <= server.failures:
            status, payload = 503, {"error": {"message": "warming up", "type": "server_error"}}
        else:
            status, payload = 200, {"choices": [{"index": 0, "text": " ok", "finish_reason": "length"}]}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    server.bodies, server.auth, server.failures = [], [], 2
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_two_503s_then_success(flaky_server, monkeypatch, caplog):
    server, url = flaky_server
    monkeypatch.setenv("PCDRL_TEST_KEY", "sk-test")
    backend = HTTPBackend(http_config(url, model="judge", max_retries=3, api_key_env="PCDRL_TEST_KEY"))
    with caplog.at_level(logging.WARNING, logger="pcdrl.models.backends.http"):
        assert backend.generate(["hi"], 3, ignore_eos=True) == [" ok"]
    assert len(server.bodies) == 3
    assert server.bodies[-1] == {"model": "judge", "prompt": ["hi"], "max_tokens": 3, "temperature": 0,
                                 "min_tokens": 3}
    assert server.auth == ["Bearer sk-test"] * 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "HTTP 503: warming up" in warnings[0]


def test_too_few_retries_for_the_503s_fail(flaky_server):
    server, url = flaky_server
    with pytest.raises(BackendError, match="after 2 attempts; last error: HTTP 503: warming up"):
        HTTPBackend(http_config(url, model="judge", max_retries=1)).generate(["hi"], 3)
    assert len(server.bodies) == 2


@pytest.mark.parametrize("command", [["-m", "pcdrl.models.server"], ["-m", "pcdrl.cli", "serve"]])
def test_server_cli_serves_on_the_announced_url(tiny_model_dir, command):
    """`python -m pcdrl.models.server` (and `pcdrl serve`) print the URL when ready; port 0 picks a free one."""
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen([sys.executable, *command, "--model", tiny_model_dir, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith(f"serving {tiny_model_dir} on http://127.0.0.1:") and line.endswith("/v1")
        url = line.split(" on ")[1]
        models = json.loads(urllib.request.urlopen(f"{url}/models", timeout=10).read())
        assert [m["id"] for m in models["data"]] == [tiny_model_dir]
        assert HTTPBackend(http_config(url, model=tiny_model_dir)).generate(["ab"], 3, ignore_eos=True)[0]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ----------------------------------------------------------------- the real default model
@pytest.fixture(scope="module")
def smollm2_server():
    hf = HFBackend(BackendConfig(model="smollm2-135m-instruct", batch_size=4))
    server, url = serve_in_thread(hf)
    yield hf, url
    server.shutdown()
    server.server_close()


@pytest.mark.real_model
def test_smollm2_scores_and_generation_match_hf_backend(smollm2_server):
    hf, url = smollm2_server
    backend = HTTPBackend(http_config(url, model="smollm2-135m-instruct", batch_size=4))
    prefixes = ["The capital of France is", "Question: Is the sky blue? Answer:"]
    options = [[" Paris", " London", " a big city"], [" Yes", " No"]]
    got, want = backend.score_options(prefixes, options), hf.score_options(prefixes, options)
    assert flat(got) == pytest.approx(flat(want), abs=1e-3)
    assert got[0][0] > got[0][1]  # a sanity check that these are real scores, not zeros
    prompts = ["Once upon a time", "<|im_start|>user\nName a fruit.<|im_end|>\n<|im_start|>assistant\n"]
    assert backend.generate(prompts, 8) == hf.generate(prompts, 8)
