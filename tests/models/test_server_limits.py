"""`pcdrl serve` against a hostile client, on a real loopback server: every request limit, every bad
Content-Length, bad types anywhere in the body, the per-request time limit, and a long generation that must not
hold up a short request from another client.

Slow generations come from a forward pass that sleeps (`slow_backend`), so the timings do not depend on how busy
the machine is: the sleep runs under the model lock, exactly where real compute would.
"""
from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
import time

import pytest

from pcdrl.models.backends.base import BackendConfig
from pcdrl.models.backends.hf import HFBackend
from pcdrl.models.server import FairLock, ServerLimits, check_host, main, parse_limits, serve_in_thread

SMALL = dict(max_body_bytes=2000, max_prompts=4, max_prompt_tokens=32, max_tokens=40, max_logprobs=3,
             read_timeout_s=0.5)
ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture
def small_server(tiny_hf, make_server):
    _, _, url = make_server(tiny_hf, **SMALL)
    return url


def assert_refused(status, body, code, param, *fragments):
    assert status == code, body
    assert set(body["error"]) == ERROR_KEYS and body["error"]["param"] == param
    for fragment in fragments:
        assert fragment in body["error"]["message"]


# ----------------------------------------------------------------- the limits
@pytest.mark.parametrize("payload, param, fragments", [
    ({"prompt": "ab", "max_tokens": 41}, "max_tokens", ["max_tokens=41", "limit of 40", "--limit max_tokens=N"]),
    ({"prompt": "ab", "max_tokens": 4, "min_tokens": 41}, "min_tokens", ["min_tokens=41", "limit of 40"]),
    ({"prompt": "ab", "logprobs": 4}, "logprobs", ["logprobs=4", "limit of 3 (max_logprobs)"]),
    ({"prompt": ["a", "b", "c", "d", "e"]}, "prompt", ["prompt holds 5 prompts", "limit of 4 (max_prompts)"]),
    ({"prompt": "x" * 33}, "prompt", ["prompt 0 has 33 tokens", "limit of 32 (max_prompt_tokens)"]),
    ({"prompt": [[5] * 3, [5] * 33]}, "prompt", ["prompt 1 has 33 tokens", "max_prompt_tokens"]),
])
def test_each_limit_is_a_400_naming_the_field_and_the_limit(small_server, http_client, payload, param, fragments):
    status, body = http_client.post(small_server, payload)
    assert_refused(status, body, 400, param, *fragments)


def test_requests_at_every_limit_are_served(small_server, http_client):
    payload = {"prompt": ["x" * 32, "y" * 31, "ab", "cd"], "max_tokens": 40, "logprobs": 3, "echo": True,
               "ignore_eos": True}
    status, body = http_client.post(small_server, payload)
    assert status == 200, body
    assert [len(c["logprobs"]["tokens"]) for c in body["choices"]] == [72, 71, 42, 42]
    assert all(len(top) == 3 for c in body["choices"] for top in c["logprobs"]["top_logprobs"][1:])


def test_a_body_over_max_body_bytes_is_a_413_before_it_is_read(small_server, http_client):
    status, body = http_client.post(small_server, {"prompt": "ab", "user": "u" * 2000})
    assert_refused(status, body, 413, "max_body_bytes", "over this server's limit of 2000 bytes")


# ----------------------------------------------------------------- Content-Length
@pytest.mark.parametrize("headers, code, fragment", [
    ({}, 411, "Content-Length is missing"),
    ({"Content-Length": "-1"}, 400, "non-negative integer number of bytes, got '-1'"),
    ({"Content-Length": "abc"}, 400, "got 'abc'"),
    ({"Content-Length": "1e3"}, 400, "got '1e3'"),
    ({"Content-Length": "+20"}, 400, "got '+20'"),
    ({"Content-Length": str(10**11)}, 413, f"is {10**11} bytes, over this server's limit of 2000"),
    ({"Content-Length": "9" * 5000}, 413, "over this server's limit"),
    ([("Content-Length", "20"), ("Content-Length", "30")], 400, "given 2 times with different values"),
    ({"Transfer-Encoding": "chunked"}, 411, "Transfer-Encoding is not supported"),
])
def test_bad_content_length_is_refused_at_once(small_server, http_client, headers, code, fragment):
    """The client keeps its side open: a server that tried to read the body (-1: until EOF) would hang."""
    start = time.monotonic()
    status, body, _ = http_client.raw(small_server, b'{"prompt": "ab"}', headers, timeout_s=5.0, half_close=False)
    assert status == code and fragment in body["error"]["message"], body
    assert time.monotonic() - start < 2.0


def test_a_body_shorter_than_its_content_length_is_a_400(small_server, http_client):
    status, body, _ = http_client.raw(small_server, b'{"prompt": "ab"}', {"Content-Length": "100"})
    assert status == 400 and "ended after 16 of the 100 bytes" in body["error"]["message"]


def test_a_stalled_body_times_out_with_408(small_server, http_client):
    start = time.monotonic()
    status, body, _ = http_client.raw(small_server, b'{"prompt"', {"Content-Length": "100"}, half_close=False)
    assert status == 408 and "read_timeout_s=0.5" in body["error"]["message"]
    assert 0.4 < time.monotonic() - start < 3.0


def test_no_handler_thread_is_left_behind(small_server, http_client):
    before = threading.active_count()
    for length in ("-1", "abc", str(10**11), "100"):
        http_client.raw(small_server, b"{}", {"Content-Length": length}, half_close=False, timeout_s=5.0)
    until = time.monotonic() + 3.0
    while threading.active_count() > before and time.monotonic() < until:
        time.sleep(0.05)
    assert threading.active_count() <= before
    assert http_client.post(small_server, {"prompt": "ab", "max_tokens": 2})[0] == 200


# ----------------------------------------------------------------- bad types: 4xx, never 500
BAD_BODIES = [
    ({"prompt": [[True, False]]}, "prompt"),  # was a 500 that leaked a repr
    ({"prompt": [True, False]}, "prompt"),
    ({"prompt": [[1, [2]]]}, "prompt"),
    ({"prompt": ["ab", 1]}, "prompt"),
    ({"prompt": {"a": 1}}, "prompt"),
    ({"prompt": 3.5}, "prompt"),
    ({"prompt": None}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": [[-1]]}, "prompt"),
    ({"prompt": "ab", "max_tokens": "5"}, "max_tokens"),
    ({"prompt": "ab", "max_tokens": 1.5}, "max_tokens"),
    ({"prompt": "ab", "max_tokens": True}, "max_tokens"),
    ({"prompt": "ab", "max_tokens": -1}, "max_tokens"),
    ({"prompt": "ab", "min_tokens": []}, "min_tokens"),
    ({"prompt": "ab", "logprobs": True}, "logprobs"),
    ({"prompt": "ab", "logprobs": "1"}, "logprobs"),
    ({"prompt": "ab", "echo": "yes"}, "echo"),
    ({"prompt": "ab", "ignore_eos": 1}, "ignore_eos"),
    ({"prompt": "ab", "temperature": "0"}, "temperature"),
    ({"prompt": "ab", "temperature": True}, "temperature"),
    ({"prompt": "ab", "model": 5}, "model"),
    ({"prompt": "ab", "stream": "no"}, "stream"),
    ({"prompt": "ab", "n": "1"}, "n"),
    ({"prompt": "ab", "stop": 5}, "stop"),
    ([{"prompt": "ab"}], None),
    ("ab", None),
    (None, None),
]


@pytest.mark.parametrize("payload, param", BAD_BODIES, ids=[json.dumps(b)[:40] for b, _ in BAD_BODIES])
def test_bad_types_are_a_400_naming_the_field(small_server, http_client, payload, param):
    status, body = http_client.post(small_server, payload)
    assert status == 400 and body["error"]["param"] == param, body
    assert "0x" not in body["error"]["message"] and "Traceback" not in body["error"]["message"]


@pytest.mark.parametrize("raw", [
    b'{"prompt": "ab", "max_tokens": NaN}',
    b'{"prompt": "ab", "max_tokens": 1' + b"0" * 5000 + b"}",  # past Python's int digit limit
    b"[" * 100_000,  # deeper than the JSON parser's recursion
    b'{"prompt": "\xff\xfe"}',  # not UTF-8
    b'{"prompt": "ab",',
    b"",
])
def test_bodies_that_are_not_usable_json_are_a_400(tiny_hf, make_server, http_client, raw):
    _, _, url = make_server(tiny_hf, max_body_bytes=200_000)
    status, body, _ = http_client.raw(url, raw, {"Content-Length": str(len(raw))})
    assert status == 400, body


def test_a_prompt_the_tokenizer_cannot_encode_is_not_a_500(small_server, http_client):
    raw = b'{"prompt": "a\\ud800b", "max_tokens": 1}'  # a lone surrogate: valid JSON, not encodable text
    status, body, _ = http_client.raw(small_server, raw, {"Content-Length": str(len(raw))})
    assert status in (200, 400), body


# ----------------------------------------------------------------- time: fairness and the time limit
def test_fair_lock_serves_waiters_in_arrival_order_even_against_a_greedy_holder():
    """A thread that releases and at once re-asks (a generation's next step) must not overtake waiters; with a
    plain threading.Lock it went ~10 more turns before the first waiter got in."""
    lock, order, stop = FairLock(), [], threading.Event()

    def greedy():
        while not stop.is_set():
            with lock:
                order.append("greedy")
                sum(range(20_000))  # holds the GIL, like a step's Python work; a plain Lock then lets it cut in

    def waiter(name):
        order.append(f"ask {name}")
        with lock:
            order.append(name)

    threading.Thread(target=greedy, daemon=True).start()
    time.sleep(0.05)
    waiters = []
    for name in ("a", "b", "c"):
        waiters.append(threading.Thread(target=waiter, args=(name,)))
        waiters[-1].start()
        time.sleep(0.02)  # arrive in this order
    for thread in waiters:
        thread.join(2.0)
    stop.set()
    assert not any(t.is_alive() for t in waiters)
    assert [x for x in order if x in ("a", "b", "c")] == ["a", "b", "c"]
    for name in ("a", "b", "c"):  # the turn in progress, and the one greedy had asked for before we came
        assert order[order.index(f"ask {name}"):order.index(name)].count("greedy") <= 2


STEP_S = 0.02


@pytest.fixture
def slow_backend(tiny_model_dir):
    """A tiny model whose every forward pass takes at least STEP_S, under the lock like real compute."""
    hf = HFBackend(BackendConfig(model=tiny_model_dir))
    forward = hf.model.forward

    @functools.wraps(forward)  # keeps the signature, which the server reads
    def slow_forward(*args, **kwargs):
        time.sleep(STEP_S)
        return forward(*args, **kwargs)

    hf.model.forward = slow_forward
    return hf


def start_long(url, http_client, max_tokens=200, timeout_s=600):
    """A long generation on another client thread -> (thread, result dict filled when it ends)."""
    result: dict = {}

    def run():
        result["status"], result["body"] = http_client.post(url, {"prompt": "ab", "max_tokens": max_tokens,
                                                                  "ignore_eos": True}, timeout_s=timeout_s)
        result["done"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_a_long_generation_does_not_hold_up_a_short_request(slow_backend, make_server, http_client):
    """Documented bound: the lock is per forward pass and FIFO, so each of the short request's passes waits for at
    most one pass of the long one; ~4 * STEP_S here, where holding the lock per request made it wait ~4 s."""
    _, _, url = make_server(slow_backend)
    thread, long_result = start_long(url, http_client)
    time.sleep(20 * STEP_S)  # the long request is generating
    start = time.monotonic()
    status, body = http_client.post(url, {"prompt": "cd", "max_tokens": 2, "ignore_eos": True})
    short_s, short_done = time.monotonic() - start, time.monotonic()
    assert status == 200 and body["usage"]["completion_tokens"] == 2
    assert thread.is_alive(), "the long request finished first: the test proves nothing"
    assert short_s < 2.0  # ~4 * STEP_S plus compute; generous for a busy machine
    thread.join(60)
    assert long_result["status"] == 200 and long_result["body"]["usage"]["completion_tokens"] == 200
    assert long_result["done"] - short_done > 1.0


def test_a_request_past_request_timeout_s_stops_with_503(slow_backend, make_server, http_client):
    _, _, url = make_server(slow_backend, request_timeout_s=0.5)
    start = time.monotonic()
    status, body = http_client.post(url, {"prompt": "ab", "max_tokens": 200, "ignore_eos": True})
    elapsed = time.monotonic() - start
    assert status == 503 and body["error"]["type"] == "timeout"
    assert "request_timeout_s=0.5" in body["error"]["message"] and "--limit request_timeout_s" in body["error"]["message"]
    assert 0.5 <= elapsed < 3.0  # 200 steps would take >= 4 s
    assert http_client.post(url, {"prompt": "ab", "max_tokens": 2})[0] == 200  # the lock was released


def test_a_request_over_max_in_flight_is_a_503_at_once(slow_backend, make_server, http_client):
    _, _, url = make_server(slow_backend, max_in_flight=1)
    thread, long_result = start_long(url, http_client, max_tokens=100)
    time.sleep(10 * STEP_S)
    start = time.monotonic()
    status, body = http_client.post(url, {"prompt": "cd", "max_tokens": 2})
    assert status == 503 and body["error"]["type"] == "server_busy" and "max_in_flight" in body["error"]["message"]
    assert time.monotonic() - start < 1.5 and thread.is_alive()
    thread.join(60)
    assert long_result["status"] == 200
    assert http_client.post(url, {"prompt": "cd", "max_tokens": 2})[0] == 200  # the slot came back


# ----------------------------------------------------------------- limits config, host check
def test_limits_are_checked_and_overridable():
    assert parse_limits(["max_tokens=2048", "request_timeout_s=1.5"]) == ServerLimits(max_tokens=2048,
                                                                                      request_timeout_s=1.5)
    with pytest.raises(ValueError, match="max_tokns=5.*one of max_body_bytes, max_prompts"):
        parse_limits(["max_tokns=5"])
    with pytest.raises(ValueError, match="--limit max_tokens: 'lots' is not a number"):
        parse_limits(["max_tokens=lots"])
    for bad in (dict(max_tokens=0), dict(max_logprobs=-1), dict(request_timeout_s=float("nan")),
                dict(max_prompts=2.5), dict(max_in_flight=True)):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=f"server limit {name}: must be a positive"):
            ServerLimits(**bad)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "::1", "[::1]",
                                  "::ffff:127.0.0.1"])
def test_loopback_hosts_need_no_flag(host):
    assert check_host(host, allow_remote=False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.168.1.5", "example.com", "localhost.evil.com"])
def test_a_remote_host_needs_allow_remote_and_warns(host):
    with pytest.raises(ValueError, match="other machines can reach this server.*--allow-remote"):
        check_host(host, allow_remote=False)
    warning = check_host(host, allow_remote=True)
    assert "no authentication and no TLS" in warning and "--allow-remote was given" in warning


def test_serve_refuses_a_remote_host_before_loading_the_model(tiny_model_dir):
    with pytest.raises(ValueError, match="--allow-remote"):
        main(["--host", "0.0.0.0", "--model", "no-such-model-is-loaded"])
    with pytest.raises(ValueError, match="--allow-remote"):
        serve_in_thread(tiny_model_dir, host="0.0.0.0")
    with pytest.raises(ValueError, match="--limit max_tokens: 'x' is not a number"):
        main(["--limit", "max_tokens=x", "--model", "no-such-model-is-loaded"])
    proc = subprocess.run([sys.executable, "-m", "pcdrl.models.server", "--host", "0.0.0.0", "--model", tiny_model_dir],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "python -m pcdrl.models.server: error: --host '0.0.0.0'" in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------- the real default model
@pytest.mark.real_model
def test_smollm2_server_holds_its_limits_and_serves_a_short_request_during_a_long_one(http_client):
    hf = HFBackend(BackendConfig(model="smollm2-135m-instruct"))
    limits = ServerLimits(request_timeout_s=600)  # the defaults, but room for a machine busy with other jobs
    server, url = serve_in_thread(hf, limits=limits)
    try:
        for payload, param in (({"prompt": "Hi", "max_tokens": limits.max_tokens + 1}, "max_tokens"),
                               ({"prompt": "Hi", "logprobs": hf.model.config.vocab_size}, "logprobs"),
                               ({"prompt": "word " * (limits.max_prompt_tokens + 10)}, "prompt"),
                               ({"prompt": [[True, False]]}, "prompt")):
            status, body = http_client.post(url, payload, timeout_s=600)
            assert status == 400 and body["error"]["param"] == param, body
        # The 4.6 MB reply: a 4-token prompt with every log-prob; now at most max_logprobs per token.
        payload = {"prompt": "The cat sat", "echo": True, "logprobs": limits.max_logprobs, "max_tokens": 16}
        data = json.dumps(payload).encode()
        status, _, raw = http_client.raw(url, data, {"Content-Length": str(len(data))}, timeout_s=600)
        assert status == 200 and len(raw) < 100_000
        thread, long_result = start_long(url, http_client, max_tokens=24)
        time.sleep(0.5)
        status, body = http_client.post(url, {"prompt": "Hello", "max_tokens": 1}, timeout_s=600)
        assert status == 200 and thread.is_alive()
        thread.join(600)
        assert long_result["status"] == 200 and long_result["body"]["usage"]["completion_tokens"] == 24
    finally:
        server.shutdown()
        server.server_close()
