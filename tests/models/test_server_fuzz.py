"""Fuzzing the server's request parsing (hypothesis): whatever JSON, bytes or Content-Length a client sends, the
answer is a 2xx or a 4xx, never a 5xx, and it comes at once (a socket timeout fails the test instead of a hang).

Bodies are plausible values for every field the server reads, the same with one field set to arbitrary JSON, or
arbitrary JSON, so both the checks and the paths past them (generation, echo, log-probs) are reached.
"""
from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pcdrl.models.server import CompletionEngine, RequestError, ServerLimits, content_length, serve_in_thread

SERVED = "<the served model's name>"  # replaced by the tiny model's folder in the tests
LIMITS = ServerLimits(max_body_bytes=4096, max_prompts=4, max_prompt_tokens=16, max_tokens=8, max_logprobs=3,
                      read_timeout_s=2.0)
FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
token_ids = st.integers(0, 97)  # the tiny vocabulary; ids out of range come from the arbitrary JSON
plausible = {  # valid values: bad ones come from setting a field to arbitrary JSON
    "prompt": st.one_of(st.text(min_size=1, max_size=20), st.lists(st.text(min_size=1, max_size=8), min_size=1,
                                                                    max_size=5),
                        st.lists(token_ids, min_size=1, max_size=20),
                        st.lists(st.lists(token_ids, min_size=1, max_size=8), min_size=1, max_size=5)),
    "max_tokens": st.integers(0, 8),
    "min_tokens": st.integers(0, 8),
    "logprobs": st.none() | st.integers(0, 3),
    "echo": st.booleans(),
    "ignore_eos": st.booleans(),
    "temperature": st.sampled_from([0, 0.0, -0.0, None]),
    "model": st.sampled_from([SERVED, None]),
    "stream": st.just(False),
    "n": st.just(1),
    "stop": st.sampled_from([None, [], ""]),
    "user": st.text(max_size=8),
}
plausible_bodies = st.fixed_dictionaries({"prompt": plausible["prompt"]},
                                         optional={k: v for k, v in plausible.items() if k != "prompt"})
one_field_wild = st.tuples(plausible_bodies, st.sampled_from(sorted(plausible)), json_values).map(
    lambda t: {**t[0], t[1]: t[2]})
bodies = plausible_bodies | one_field_wild | json_values


def with_model(body, name: str):
    if isinstance(body, dict) and body.get("model") == SERVED:
        return {**body, "model": name}
    return body


@pytest.fixture(scope="module")
def engine(tiny_hf):
    return CompletionEngine(tiny_hf, LIMITS)


@pytest.fixture(scope="module")
def fuzz_url(tiny_hf):
    server, url = serve_in_thread(tiny_hf, limits=LIMITS)
    yield url
    server.shutdown()
    server.server_close()


@settings(FUZZ, max_examples=300)
@given(body=bodies)
def test_engine_answers_every_body_or_refuses_it_with_a_4xx(engine, body):
    body = with_model(body, engine.name)
    try:
        reply = engine.complete(body)
    except RequestError as err:
        event(f"refused: {err.param}")  # --hypothesis-show-statistics shows which checks the bodies reach
        assert 400 <= err.status < 500 and str(err)
        return
    event("served")
    n_prompts = 1 if isinstance(body["prompt"], str) or all(isinstance(t, int) for t in body["prompt"]) \
        else len(body["prompt"])
    assert len(reply["choices"]) == n_prompts
    for choice in reply["choices"]:
        if choice["logprobs"] is not None:
            assert "".join(choice["logprobs"]["tokens"]) == choice["text"]
    assert reply["usage"]["completion_tokens"] <= n_prompts * LIMITS.max_tokens


@settings(FUZZ, max_examples=80)
@given(body=bodies)
def test_http_answers_every_json_body_with_2xx_or_4xx(fuzz_url, http_client, engine, body):
    status, reply = http_client.post(fuzz_url, with_model(body, engine.name), timeout_s=10.0)
    event(f"HTTP {status}")
    assert status < 500, reply
    assert ("choices" in reply) if status == 200 else set(reply["error"]) == {"message", "type", "param", "code"}


header_text = st.text(alphabet=string.ascii_letters + string.digits + " +-.,", max_size=8)


@settings(FUZZ, max_examples=80)
@given(raw=st.binary(max_size=64) | bodies.map(lambda b: json.dumps(b).encode()),
       length=st.sampled_from(["exact", "exact", None]) | st.integers(-3, 5000).map(str) | header_text,
       chunked=st.sampled_from([False, False, False, False, True]))
def test_http_answers_any_bytes_and_content_length_with_2xx_or_4xx(fuzz_url, http_client, raw, length, chunked):
    headers = {} if length is None else {"Content-Length": str(len(raw)) if length == "exact" else length}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    status, reply, _ = http_client.raw(fuzz_url, raw, headers, timeout_s=10.0)
    event(f"HTTP {status}")
    assert 200 <= status < 500, reply


@settings(FUZZ, max_examples=500)
@given(values=st.none() | st.lists(st.text(max_size=12) | st.integers(-(10**30), 10**30).map(str), max_size=3),
       limit=st.integers(1, 10**12))
def test_content_length_is_a_size_within_the_limit_or_a_4xx(values, limit):
    try:
        size = content_length(values, limit)
    except RequestError as err:
        assert err.status in (400, 411, 413)
    else:
        assert 0 <= size <= limit and size == int(values[0])
