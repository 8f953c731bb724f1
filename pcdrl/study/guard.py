"""The page's defences, as small pure pieces: CSRF tokens, form validation, and per-key rate limits.

- A participant's forms carry an HMAC of their id under the study's secret; the start and resume forms carry
  an HMAC of a random browser cookie (double submit). Another site can post forms but cannot read either token.
- Every field is checked for presence, length and shape, and unknown fields are refused, before anything is stored.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections import defaultdict, deque

ID_PATTERN = re.compile(r"p-[A-Za-z0-9_-]{16}")
"""Participant ids as store.new_participant makes them."""
AGENT_PATTERN = re.compile(r"judge:[a-z0-9][a-z0-9_.-]{0,40}")
"""A simulated participant names its judge; a person sends no agent."""
MAX_FIELD = 200


class FormError(ValueError):
    """A form the page refuses: the message is shown to the sender as is, so it must not echo their input."""


def token(secret: bytes, purpose: str, subject: str) -> str:
    return hmac.new(secret, f"{purpose}:{subject}".encode(), hashlib.sha256).hexdigest()[:40]


def check_token(secret: bytes, purpose: str, subject: str, given: str | None) -> None:
    if not given or not subject or not hmac.compare_digest(token(secret, purpose, subject), given):
        raise FormError("this form is out of date or was not sent by this page (CSRF check failed); "
                        "reload the page and try again")


def fields(form, allowed: set[str], required: set[str]) -> dict[str, str]:
    """The form's fields as strings: each given once, at most MAX_FIELD characters, none unknown or missing."""
    unknown = sorted(set(form.keys()) - allowed)
    if unknown:
        raise FormError(f"unexpected form field(s): {', '.join(k[:30] for k in unknown[:5])}")
    out = {}
    for key in allowed:
        values = form.getlist(key)
        if len(values) > 1:
            raise FormError(f"field '{key}' was sent {len(values)} times")
        if values:
            if len(values[0]) > MAX_FIELD:
                raise FormError(f"field '{key}' is longer than {MAX_FIELD} characters")
            out[key] = values[0]
    missing = sorted(required - set(out))
    if missing:
        raise FormError(f"missing form field(s): {', '.join(missing)}")
    return out


def option_index(value: str, n_options: int) -> int:
    if not re.fullmatch(r"\d{1,2}", value) or not 0 <= int(value) < n_options:
        raise FormError(f"choice must be an option number from 0 to {n_options - 1}")
    return int(value)


class RateLimit:
    """At most `limit` events per key within `window` seconds (a sliding window, kept in memory)."""

    def __init__(self, limit: int, window: float = 60.0):
        self.limit, self.window = limit, window
        self._events: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def wait_needed(self, key: str, now: float | None = None) -> float:
        """0 and records the event if allowed; otherwise the seconds until it would be (nothing recorded)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._events[key]
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return events[0] + self.window - now
            events.append(now)
            return 0.0
