"""A judge (or S) behind an OpenAI-compatible `/v1/completions` endpoint: vLLM, or `pcdrl.models.server`.

Request format (what this client sends; `vllm serve` and `python -m pcdrl.models.server` both accept it):

- generation: ``{"model", "prompt": [text, ...] | [[ids], ...], "max_tokens": n, "temperature": 0}``,
  plus ``"min_tokens": n`` when ``ignore_eos`` (a vLLM extension that our server also knows: EOS
  cannot end the text before n tokens, like HF's ``min_new_tokens``). Text and id prompts go in
  separate requests, since one ``prompt`` list cannot mix them.
- scoring: ``{"model", "prompt": [prefix + option, ...], "echo": true, "logprobs": 1,
  "max_tokens": 1, "temperature": 0}``. vLLM refuses ``max_tokens=0``, so one token is generated
  and ignored. An option's score is the sum of ``token_logprobs`` over the echoed tokens that
  start inside the option. Offsets are recounted from the token strings, and the prompt is
  located in their concatenation, because vLLM counts a BOS token's text (``<bos>``) in
  ``text_offset`` although the echoed text leaves it out.

With ``config.tokenizer`` set, scoring sends token ids instead: the prefix tokenized as a prompt
and the option without special tokens, exactly as `HFBackend` does, and the option's tokens are
the last ones by count. Without it, prefix and option are tokenized jointly by the server, which
can merge characters across the boundary (an option starting with a space is safe for BPE
tokenizers); a token straddling the boundary counts for neither side.

The API key (``$OPENAI_API_KEY`` by default) goes only over https or to a loopback host: a bearer token sent
over plain http to another machine can be read by anyone on the way. Elsewhere it is withheld, with a warning,
unless the config opts in with ``api_key_over_http: true`` (`may_send_api_key`).
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable

from pcdrl.models.backends.base import Backend, BackendConfig, BackendError, Prompt, check_options

log = logging.getLogger(__name__)


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1, ::ffff:127.x). Other names count as
    remote: they are not resolved, since DNS can point them anywhere."""
    host = (host or "").strip().strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def may_send_api_key(base_url: str, over_http: bool = False) -> bool:
    """Whether a bearer token may go to ``base_url``: over https, to a loopback host, or when the user opted in
    (``over_http``) for a trusted network."""
    parts = urllib.parse.urlsplit(base_url.strip())
    return over_http or parts.scheme.lower() == "https" or is_loopback_host(parts.hostname)


class TransientError(Exception):
    """A failure worth retrying: no connection, a timeout, HTTP 429 or 5xx."""


def with_retries(send: Callable[[], dict], max_retries: int, backoff_s: float, url: str,
                 sleep: Callable[[float], None] = time.sleep) -> dict:
    """Call ``send`` until it returns; retry `TransientError` after backoff_s, 2*backoff_s, ...

    Any other exception (a `BackendError` for a 4xx, say) goes straight through. When the
    retries run out, raise a `BackendError` that says what to check.
    """
    attempts = max_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return send()
        except TransientError as err:
            last = err
            if attempt == attempts:
                break
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("request to %s failed (attempt %d of %d): %s; retrying in %.2fs",
                        url, attempt, attempts, err, delay)
            sleep(delay)
    raise BackendError(
        f"request to {url} failed after {attempts} attempts; last error: {last}. "
        "Is the server up and reachable? base_url should be the server root ending in /v1 "
        "(e.g. http://127.0.0.1:8000/v1); raise timeout_s or max_retries for a slow server."
    )


def post_json(url: str, payload: dict, headers: dict[str, str], timeout_s: float) -> dict:
    """One POST. Transient failures raise `TransientError`; other HTTP errors raise `BackendError`.

    ``timeout_s`` bounds the connection and each read (urllib's meaning), not the whole exchange.
    """
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        message = _server_message(err)
        if err.code == 429 or err.code >= 500:
            raise TransientError(f"HTTP {err.code}: {message}") from err
        hint = " (base_url should end in /v1)" if err.code == 404 else ""
        raise BackendError(f"{url} answered HTTP {err.code}: {message}{hint}") from err
    except (TimeoutError, socket.timeout) as err:
        raise TransientError(f"timed out after {timeout_s}s") from err
    except urllib.error.URLError as err:  # refused, unreachable, or a timeout while connecting
        reason = err.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise TransientError(f"timed out after {timeout_s}s") from err
        raise TransientError(f"cannot connect: {reason}") from err
    except (http.client.HTTPException, ConnectionError) as err:  # dropped mid-response
        raise TransientError(f"connection broke: {err!r}") from err
    try:
        return json.loads(body)
    except ValueError as err:
        raise BackendError(f"{url} answered with something that is not JSON: {body[:200]!r}") from err


def _server_message(err: urllib.error.HTTPError) -> str:
    """The `error.message` of an OpenAI-style error body, else the raw body."""
    try:
        raw = err.read().decode(errors="replace")
    except Exception:  # noqa: BLE001 - the status code alone still tells the story
        return err.reason or ""
    try:
        return json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return raw[:500] or str(err.reason)


class HTTPBackend(Backend):
    def __init__(self, config: BackendConfig):
        if not config.base_url:
            raise ValueError("backend kind 'http' needs base_url, e.g. http://127.0.0.1:8000/v1")
        if config.max_retries < 0 or config.backoff_s < 0 or config.timeout_s <= 0 or config.batch_size < 1:
            raise ValueError("http backend: max_retries and backoff_s must be >= 0, timeout_s > 0, batch_size >= 1")
        self.config = config
        self.url = config.base_url.rstrip("/") + "/completions"
        if not config.base_url.rstrip("/").endswith("/v1"):
            log.warning("base_url %s does not end in /v1; OpenAI-compatible servers usually expect it", config.base_url)
        self.headers: dict[str, str] = {}
        self.key_withheld = False
        api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        # getattr: the opt-in is a BackendConfig field; reading it this way works before and after it lands.
        if api_key and may_send_api_key(config.base_url, config.api_key_over_http):
            self.headers["Authorization"] = f"Bearer {api_key}"
        elif api_key:
            self.key_withheld = True
            log.warning("not sending $%s to %s: plain http to a host that is not loopback would show the key to "
                        "anyone on the way. Use an https base_url, or set backend.api_key_over_http: true if "
                        "this network is trusted", config.api_key_env, config.base_url)
        self.tokenizer = None
        if config.tokenizer:
            from pcdrl.models.loading import load_tokenizer

            self.tokenizer = load_tokenizer(config.tokenizer)

    def request(self, payload: dict) -> dict:
        """POST a raw completions payload (the model name is filled in), with retries."""
        payload = {"model": self.config.model, **payload}
        send = lambda: post_json(self.url, payload, self.headers, self.config.timeout_s)  # noqa: E731
        try:
            return with_retries(send, self.config.max_retries, self.config.backoff_s, self.url)
        except BackendError as err:
            if self.key_withheld and any(f"HTTP {code}" in str(err) for code in (401, 403)):
                raise BackendError(f"{err} (the key in ${self.config.api_key_env} was not sent: {self.url} is plain "
                                   "http to a host that is not loopback; use https, or set "
                                   "backend.api_key_over_http: true if this network is trusted)") from err
            raise

    def _choices(self, prompts: list, payload: dict) -> list[dict]:
        """Completion choices for ``prompts``, in order, ``batch_size`` prompts per request."""
        out: list[dict] = []
        for start in range(0, len(prompts), self.config.batch_size):
            chunk = prompts[start : start + self.config.batch_size]
            reply = self.request({"prompt": chunk, **payload})
            choices = sorted(reply.get("choices", []), key=lambda c: c.get("index", 0))
            if len(choices) != len(chunk):
                raise BackendError(f"{self.url} returned {len(choices)} choices for {len(chunk)} prompts")
            out.extend(choices)
        return out

    # ----------------------------------------------------------------- generation
    def generate(self, prompts: list[Prompt], max_new_tokens: int, ignore_eos: bool = False) -> list[str]:
        payload: dict = {"max_tokens": max_new_tokens, "temperature": 0}
        if ignore_eos:
            payload["min_tokens"] = max_new_tokens  # vLLM extension; plain OpenAI servers lack it
        normalized = [p if isinstance(p, str) else [int(t) for t in p] for p in prompts]
        results: list[str] = [""] * len(prompts)
        for want_text in (True, False):  # one request cannot mix text and token-id prompts
            rows = [i for i, p in enumerate(normalized) if isinstance(p, str) == want_text]
            for i, choice in zip(rows, self._choices([normalized[i] for i in rows], payload)):
                results[i] = choice.get("text", "")
        return results

    # ----------------------------------------------------------------- scoring
    def score_options(self, prefixes: list[str], options: list[list[str]]) -> list[list[float]]:
        check_options(prefixes, options)
        pairs = list(dict.fromkeys((p, o) for p, opts in zip(prefixes, options) for o in opts))
        if self.tokenizer is not None:
            scores = self._score_by_ids(pairs)
        else:
            scores = self._score_by_text(pairs)
        table = dict(zip(pairs, scores))
        return [[table[(p, o)] for o in opts] for p, opts in zip(prefixes, options)]

    def _score_payload(self) -> dict:
        return {"echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}

    def _score_by_ids(self, pairs: list[tuple[str, str]]) -> list[float]:
        rows = []
        for prefix, option in pairs:
            rows.append((self.prompt_ids(prefix), self.option_ids(option)))
        choices = self._choices([p + o for p, o in rows], self._score_payload())
        scores = []
        for (p, o), choice, pair in zip(rows, choices, pairs):
            values = _logprobs(choice, self.url)["token_logprobs"][len(p) : len(p) + len(o)]
            scores.append(_sum_logprobs(values, len(o), pair))
        return scores

    def _score_by_text(self, pairs: list[tuple[str, str]]) -> list[float]:
        choices = self._choices([p + o for p, o in pairs], self._score_payload())
        return [option_logprob(_logprobs(c, self.url), prefix, option, pair=(prefix, option))
                for (prefix, option), c in zip(pairs, choices)]


def option_logprob(logprobs: dict, prefix: str, option: str, pair=None) -> float:
    """Sum of the echoed log-probs of the tokens that start inside ``option`` (text follows ``prefix``)."""
    tokens, values = logprobs["tokens"], logprobs["token_logprobs"]
    prompt = prefix + option
    joined = "".join(tokens)
    shift = joined.find(prompt)  # leading special-token text (BOS) before the prompt
    starts = []
    if shift >= 0:
        pos = 0
        for tok in tokens:
            starts.append(pos)
            pos += len(tok)
    else:  # token strings do not spell the prompt (raw byte-level pieces): trust the server's offsets
        shift, starts = 0, list(logprobs["text_offset"])
    lo, hi = shift + len(prefix), shift + len(prompt)  # tokens at or past hi were generated
    picked = [v for s, v in zip(starts, values) if lo <= s < hi]
    return _sum_logprobs(picked, None, pair or (prefix, option))


def _logprobs(choice: dict, url: str) -> dict:
    logprobs = choice.get("logprobs")
    if not logprobs or "token_logprobs" not in logprobs:
        raise BackendError(f"{url} returned no echoed log-probs; does the server support echo with logprobs?")
    return logprobs


def _sum_logprobs(values: list, expected: int | None, pair) -> float:
    if not values or (expected is not None and len(values) != expected):
        raise BackendError(f"the server echoed no log-probs for the option of {pair!r}")
    if any(v is None for v in values):
        raise BackendError(f"the server gave a null log-prob for a token of the option of {pair!r}: either the "
                           "prefix is empty (the first token of a prompt has none) or the server withholds "
                           "prompt log-probs (some prefix caches do)")
    return float(sum(values))
