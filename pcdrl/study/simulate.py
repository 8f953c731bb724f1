"""`pcdrl study simulate`: a judge LM takes part in the study through the same HTTP pages as people.

Each simulated participant has its own cookies, starts with the start form (agent `judge:NAME`), reads every item
page's HTML, and posts the option the judge scores highest (ties broken at random, seeded: the prior's calibrated
scores are all zero). Participants move in lockstep so that one batched judge call answers a step for all of
them, while their HTTP requests run concurrently. A full block of participants (store.block_size) answers every
(item, condition) once, so `pcdrl study report` can set their accuracy beside `pcdrl eval`'s on the same items.
"""
from __future__ import annotations

import http.cookiejar
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pcdrl.simulators.metrics import top_options
from pcdrl.study.page_reader import ItemPage, read_form_token, read_item_page


class SimulationError(ValueError):
    pass


@dataclass
class Session:
    """One simulated participant's browser: a cookie jar and what it has done."""

    index: int
    opener: urllib.request.OpenerDirector = field(repr=False, default=None)
    done: bool = False
    answered: int = 0
    retries: int = 0
    page: ItemPage | None = None
    choice: int = 0
    latencies: list[float] = field(default_factory=list)
    """Seconds per answered HTTP request (a 429's wait is not counted)."""


def _session(index: int) -> Session:
    jar = http.cookiejar.CookieJar()
    return Session(index, urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar)))


def _request(session: Session, url: str, form: dict | None = None, timeout: float = 60.0,
             max_wait: float = 120.0) -> tuple[str, str]:
    """(final url, body) of a GET or a form POST; waits out a 429's Retry-After (counted), raises on other errors."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    waited = 0.0
    while True:
        sent = time.perf_counter()
        try:
            with session.opener.open(urllib.request.Request(url, data=data), timeout=timeout) as response:
                body = response.read().decode("utf-8")
                session.latencies.append(time.perf_counter() - sent)
                return response.geturl(), body
        except urllib.error.HTTPError as err:
            body = err.read().decode("utf-8", "replace").strip()
            if err.code == 429 and waited < max_wait:
                pause = float(err.headers.get("Retry-After") or 1)
                session.retries += 1
                waited += pause
                time.sleep(pause)
                continue
            raise SimulationError(f"{url}: HTTP {err.code}: {body}") from None


def judge_choice(scores: list[float], rng: random.Random) -> int:
    """The judge's pick: its top-scoring option, a random one among ties (as expected_accuracy counts a tie)."""
    tied = top_options(scores)
    return tied[0] if len(tied) == 1 else rng.choice(tied)


def simulate(url: str, judge, participants: int, seed: int = 0, concurrency: int = 20, progress=None) -> dict:
    """Run `participants` simulated participants of `judge` (a pcdrl Judge) against the study at `url`."""
    url = url.rstrip("/")
    agent = f"judge:{judge.name}"
    sessions = [_session(i) for i in range(participants)]
    rng = random.Random(f"{seed}:ties")
    started, requests = time.time(), 0
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, participants))) as pool:
        def begin(session: Session) -> None:
            _, html = _request(session, url + "/")
            _request(session, url + "/start", {"csrf": read_form_token(html), "agent": agent})

        list(pool.map(begin, sessions))
        requests += 2 * participants

        def fetch(session: Session) -> None:
            final, html = _request(session, url + "/item")
            if final.endswith("/done"):
                session.done, session.page = True, None
            else:
                session.page = read_item_page(html)

        while True:
            active = [s for s in sessions if not s.done]
            list(pool.map(fetch, active))
            requests += len(active)
            active = [s for s in active if not s.done]
            if not active:
                break
            pages = [s.page for s in active]
            answers = judge.answer([p.question for p in pages], [p.options for p in pages],
                                   [p.explanation() for p in pages])
            for session, scores in zip(active, answers.scores):
                session.choice = judge_choice(scores, rng)

            def post(session: Session) -> None:
                page = session.page
                _request(session, url + "/answer", {"csrf": page.csrf, "item": page.item,
                                                    "choice": page.choices[session.choice]})
                session.answered += 1

            list(pool.map(post, active))
            requests += len(active)
            if progress is not None:
                progress(sum(s.answered for s in sessions))
    latencies = sorted(x for s in sessions for x in s.latencies)
    quantile = (lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 4)) if latencies else (
        lambda q: None)
    return {"participants": participants, "answers": sum(s.answered for s in sessions),
            "retries_after_429": sum(s.retries for s in sessions), "requests": requests,
            "seconds": round(time.time() - started, 2), "latency_p50_s": quantile(0.5),
            "latency_p95_s": quantile(0.95), "latency_max_s": quantile(1.0), "agent": agent}
