"""What `pcdrl serve` accepts: the request limits (`ServerLimits`), the host check, and the small pure checks of a
request's fields and headers that give a `RequestError` (a 4xx in OpenAI's error shape) instead of a 500."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace

from pcdrl.models.backends.http import is_loopback_host

@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask of the server. A request past a limit gets a 4xx that names the field and the
    limit; ``--limit NAME=VALUE`` raises one."""

    max_body_bytes: int = 4 * 2**20
    """Largest request body (its Content-Length), in bytes; a larger one gets 413 before a byte of it is read."""
    max_prompts: int = 64
    """Most prompts in one request's ``prompt`` list (the http backend sends ``batch_size`` per request)."""
    max_prompt_tokens: int = 2048
    """Most tokens in one prompt. An echo pass keeps prompt_tokens x vocab logits in memory (2048 x 262k float32
    is 2 GiB for Gemma 3), so this also bounds memory. The model's own positions bound prompt + max_tokens too."""
    max_tokens: int = 1024
    """Largest ``max_tokens`` (and ``min_tokens``) a request may ask for."""
    max_logprobs: int = 20
    """Largest ``logprobs`` (top log-probs per token, vLLM's default cap); each adds one entry per token to the
    reply, so an uncapped value can ask for the whole vocabulary at every token."""
    request_timeout_s: float = 50.0
    """Wall-clock seconds one request may take, waiting for its turn included; past it the request stops and
    gets 503. Under the http backend's default timeout_s (60), so a client with default settings hears why."""
    read_timeout_s: float = 10.0
    """Seconds to wait for a client's next bytes (request line, headers, body): a client that stalls longer gets
    408 and its connection is closed, so it cannot hold a thread."""
    max_in_flight: int = 16
    """Requests in progress at once; one more gets 503 at once (the http backend retries it after a backoff)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value, is_float = getattr(self, f.name), f.type == "float"
            number = isinstance(value, (int, float) if is_float else int) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value <= 0:
                raise ValueError(f"server limit {f.name}: must be a positive {'number' if is_float else 'integer'}, "
                                 f"got {value!r}")


def parse_limits(items: list[str], base: ServerLimits | None = None) -> ServerLimits:
    """``["max_tokens=2048", ...]`` -> `ServerLimits`; an unknown name or a bad value names the field."""
    names = {f.name: f for f in fields(ServerLimits)}
    changes: dict[str, float | int] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in names:
            raise ValueError(f"--limit {item!r}: expected NAME=VALUE with NAME one of {', '.join(names)}")
        try:
            changes[name] = float(raw) if names[name].type == "float" else int(raw)
        except ValueError:
            raise ValueError(f"--limit {name}: {raw!r} is not a number") from None
    return replace(base or ServerLimits(), **changes)


def check_host(host: str, allow_remote: bool) -> str | None:
    """None for a loopback host. Any other host serves the model to other machines: a ValueError that says how
    to proceed, or with ``allow_remote`` the warning to print. Names other than localhost count as remote."""
    if is_loopback_host(host):
        return None
    where = "every network interface" if host in ("", "0.0.0.0", "::") else f"{host}"
    risk = (f"--host {host!r} listens on {where}, so other machines can reach this server; it has no "
            "authentication and no TLS, and anyone who reaches it can run the model")
    if not allow_remote:
        raise ValueError(f"{risk}. Keep the default --host 127.0.0.1 (from another machine, tunnel: "
                         "ssh -L 8000:127.0.0.1:8000 HOST), or pass --allow-remote to serve anyway")
    return f"{risk}; serving anyway because --allow-remote was given"


class RequestError(Exception):
    """A refused request: its HTTP status and the OpenAI error body's type and param (the field at fault)."""

    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.param = status, kind, param

    def payload(self) -> dict:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": None}}


def is_token_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def brief(value) -> str:
    """A short repr of client data for an error message (a client may send megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def over_limit(what: str, limit: int, limit_name: str) -> str:
    return (f"{what}, over this server's limit of {limit} ({limit_name}); send less, or start the server with "
            f"--limit {limit_name}=N")


def count_field(body: dict, key: str, default: int, limit: int, limit_name: str) -> int:
    """A non-negative integer field, at most ``limit``."""
    value = body.get(key, default)
    if value is None:
        return default
    if not is_token_id(value) or value < 0:
        raise RequestError(f"{key} must be a non-negative integer, got {brief(value)}", param=key)
    if value > limit:
        raise RequestError(over_limit(f"{key}={value}", limit, limit_name), param=key)
    return value


def flag_field(body: dict, key: str) -> bool:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise RequestError(f"{key} must be true or false, got {brief(value)}", param=key)
    return bool(value)


def content_length(values: list[str] | None, limit: int) -> int:
    """The body size a request declares, or a `RequestError`: missing (411), not a plain non-negative integer,
    or given twice with different values (400), or over ``limit`` (413). ``rfile.read(-1)`` would read until the
    client hangs up, which is why a negative length must never reach it."""
    if not values:
        raise RequestError("Content-Length is missing; send the JSON body with a Content-Length header "
                           "(chunked bodies are not supported)", 411)
    raw = {v.strip() for v in values}
    if len(raw) > 1:
        raise RequestError(f"Content-Length is given {len(values)} times with different values", 400)
    text = raw.pop()
    if not re.fullmatch(r"[0-9]+", text):
        raise RequestError(f"Content-Length must be a non-negative integer number of bytes, got {brief(text)}")
    size = int(text) if len(text) <= 30 else limit + 1  # int() refuses over 4300 digits; any such size is too big
    if size > limit:
        raise RequestError(f"the request body is {size} bytes, over this server's limit of {limit} bytes "
                           f"(max_body_bytes); send less, or start the server with --limit max_body_bytes=N",
                           413, param="max_body_bytes")
    return size
