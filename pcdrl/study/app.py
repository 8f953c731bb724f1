"""The study's web pages (Flask): start, one item at a time, done; and resume with a code.

    GET  /          what the study is; a start form, and a form to come back with a code
    POST /start     a new participant: a random id (no personal data), the next slot of the design
    POST /resume    come back: the code is the participant id
    GET  /item      the participant's next item: an explanation (blinded: never the condition's name),
                    the question and the options; the first view starts the clock for "time taken"
    POST /answer    one answer, stored in one transaction before the redirect; then the next item
    GET  /done      thanks, and the code

Forms carry CSRF tokens; every field is validated; answers are rate-limited per participant and starts per
address. Errors are a status and one plain sentence: no stack trace ever reaches a browser.
"""
from __future__ import annotations

import secrets
import sys
import traceback
from pathlib import Path

from flask import Flask, redirect, render_template, request
from werkzeug.exceptions import HTTPException

from pcdrl.simulators.render import load_template
from pcdrl.study import guard
from pcdrl.study.store import StudyStore

PARTICIPANT_COOKIE = "pcdrl_participant"
BROWSER_COOKIE = "pcdrl_browser"
HEADERS = {
    # No script runs on these pages, nothing is framed, nothing is loaded from elsewhere.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """A request answered with `status` and a plain message (and nothing stored)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


def explanation_headers(store: StudyStore) -> dict:
    """The headers the training judge's prompt puts above each kind of explanation: people read the same words."""
    cfg = store.frozen["judges"][store.training_judge]["config"]
    parts = load_template(cfg.get("template", "default"), cfg.get("persona", "novice"),
                          cfg.get("templates_file", "")).parts
    return {"labels": parts["concepts_header"], "formula": parts["formula_header"], "oracle": parts["oracle_header"],
            "max_labels": int(cfg.get("max_labels", 8))}


def create_app(store: StudyStore) -> Flask:
    app = Flask(__name__, static_folder=str(Path(__file__).parent / "static"), static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=8 * 1024, PROPAGATE_EXCEPTIONS=False, TRAP_HTTP_EXCEPTIONS=False)
    answers_limit = guard.RateLimit(store.config.answers_per_minute)
    starts_limit = guard.RateLimit(store.config.starts_per_minute)
    headers = explanation_headers(store)
    title = store.config.title

    def participant() -> str | None:
        pid = request.cookies.get(PARTICIPANT_COOKIE, "")
        return pid if guard.ID_PATTERN.fullmatch(pid) and store.exists(pid) else None

    def page(template: str, status: int = 200, **context):
        return app.make_response((render_template(template, title=title, **context), status))

    def to(path: str, pid: str | None = None):
        response = redirect(path, code=303)
        if pid:
            response.set_cookie(PARTICIPANT_COOKIE, pid, max_age=60 * 60 * 24 * 90, httponly=True, samesite="Lax")
        return response

    @app.after_request
    def harden(response):
        response.headers.update(HEADERS)
        return response

    @app.get("/")
    def index():
        browser = request.cookies.get(BROWSER_COOKIE, "")
        if not (16 <= len(browser) <= 64 and browser.replace("-", "").replace("_", "").isalnum()):
            browser = secrets.token_urlsafe(24)
        pid = participant()
        response = page("index.html", csrf=guard.token(store.secret, "start", browser), participant=pid,
                        progress=store.progress(pid) if pid else None)
        response.set_cookie(BROWSER_COOKIE, browser, httponly=True, samesite="Strict")
        return response

    def browser_token(form: dict) -> None:
        guard.check_token(store.secret, "start", request.cookies.get(BROWSER_COOKIE, ""), form.get("csrf"))

    @app.post("/start")
    def start():
        form = guard.fields(request.form, {"csrf", "agent"}, {"csrf"})
        browser_token(form)
        agent = form.get("agent", "")
        if agent and not guard.AGENT_PATTERN.fullmatch(agent):
            raise guard.FormError("agent must look like judge:NAME (lower-case letters, digits, _ . -)")
        wait = starts_limit.wait_needed(request.remote_addr or "?")
        if wait:
            raise Refused(429, "too many new participants from this address; wait a minute", wait)
        return to("/item", store.new_participant(agent))

    @app.post("/resume")
    def resume():
        form = guard.fields(request.form, {"csrf", "code"}, {"csrf", "code"})
        browser_token(form)
        code = form["code"].strip()
        if not guard.ID_PATTERN.fullmatch(code) or not store.exists(code):
            raise Refused(404, "no participant has this code; check it, or start again")
        return to("/item", code)

    @app.get("/item")
    def item():
        pid = participant()
        if pid is None:
            return to("/")
        step = store.next_step(pid)
        if step is None:
            return to("/done")
        shown = step.item["shown"][step.condition]
        return page("item.html", step=step, shown=shown, headers=headers,
                    labels=shown.get("labels", [])[: headers["max_labels"]],
                    csrf=guard.token(store.secret, "answer", pid), participant=pid)

    @app.post("/answer")
    def answer():
        pid = participant()
        if pid is None:
            raise Refused(403, "no participant: start at the first page (or resume with your code)")
        form = guard.fields(request.form, {"csrf", "item", "choice"}, {"csrf", "item", "choice"})
        guard.check_token(store.secret, "answer", pid, form["csrf"])
        if form["item"] not in store.by_id:
            raise Refused(400, "unknown item; reload the page")
        step = store.next_step(pid)
        if step is None or step.item["id"] != form["item"]:
            raise Refused(409, "this item was already answered or is not yours to answer now; "
                               "go to /item for your next question")
        choice = guard.option_index(form["choice"], len(step.item["options"]))
        wait = answers_limit.wait_needed(pid)
        if wait:
            raise Refused(429, "answers are coming faster than anyone can read; wait a moment and send again", wait)
        if not store.record(pid, step, choice):
            raise Refused(409, "this item was already answered; go to /item for your next question")
        return to("/item")

    @app.get("/done")
    def done():
        pid = participant()
        if pid is None:
            return to("/")
        answered, total = store.progress(pid)
        if answered < total:
            return to("/item")
        return page("done.html", participant=pid, total=total)

    def plain(status: int, message: str, retry_after: float | None = None):
        response = app.make_response((f"{status}: {message}\n", status))
        response.mimetype = "text/plain"
        if retry_after:
            response.headers["Retry-After"] = str(max(1, round(retry_after + 0.5)))
        return response

    @app.errorhandler(Refused)
    def refused(err: Refused):
        return plain(err.status, err.message, err.retry_after)

    @app.errorhandler(guard.FormError)
    def bad_form(err: guard.FormError):
        return plain(400, str(err))

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        return plain(err.code or 500, err.name.lower())

    @app.errorhandler(Exception)
    def crash(err: Exception):
        traceback.print_exception(err, file=sys.stderr)  # for the operator's terminal, never the browser
        return plain(500, "internal error; nothing was stored, try again")

    return app
