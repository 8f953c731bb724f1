"""The study pages over real HTTP on loopback: the participant's path, and every kind of tampered form refused
with a 4xx, a plain message and nothing stored."""
import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request

import pytest

from pcdrl.study.config import StudyConfig
from pcdrl.study.page_reader import read_form_token, read_item_page
from pcdrl.study.serve import StudyServer, host_warning, open_study


class Browser:
    """A cookie-keeping client; `send` returns (status, final url, body, headers) and never raises on 4xx/5xx."""

    def __init__(self, url: str):
        self.url = url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def send(self, path: str, form=None, raw: bytes | None = None):
        data = raw if raw is not None else (urllib.parse.urlencode(form).encode() if form is not None else None)
        try:
            with self.opener.open(urllib.request.Request(self.url + path, data=data), timeout=30) as r:
                return r.status, r.geturl(), r.read().decode(), r.headers
        except urllib.error.HTTPError as err:
            return err.code, err.geturl(), err.read().decode(), err.headers

    def start(self):
        _, _, html, _ = self.send("/")
        return self.send("/start", {"csrf": read_form_token(html)})

    def page(self):
        status, _, html, _ = self.send("/item")
        assert status == 200
        return read_item_page(html)


@pytest.fixture
def server(store):
    with StudyServer(store, quiet=True) as running:
        yield running


def answer(browser, page, choice="0", **extra):
    return browser.send("/answer", {"csrf": page.csrf, "item": page.item, "choice": choice, **extra})


def test_a_participant_answers_every_item_then_sees_done(server, store):
    browser = Browser(server.url)
    status, url, html, headers = browser.start()
    assert status == 200 and url.endswith("/item")
    assert "default-src 'none'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
    seen = []
    while True:
        status, url, html, _ = browser.send("/item")
        if url.endswith("/done"):
            break
        page = read_item_page(html)
        seen.append(page.item)
        assert answer(browser, page, "1")[0] == 200
    assert "all 6 answers are saved" in html
    rows = store.answers()
    assert [r["item"] for r in sorted(rows, key=lambda r: r["position"])] == seen
    assert {r["condition"] for r in rows} == set(store.conditions)
    assert all(r["choice"] == 1 for r in rows)


def test_hostile_text_is_escaped_on_the_page(server, hostile):
    browser = Browser(server.url)
    _, _, html, _ = browser.start()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert hostile in read_item_page(html).options[1]  # and reads back exactly


@pytest.mark.parametrize("tamper,status,message", [
    ({"csrf": "0" * 40}, 400, "CSRF check failed"),
    ({"choice": "4"}, 400, "choice must be an option number from 0 to 3"),
    ({"choice": "-1"}, 400, "choice must be an option number"),
    ({"choice": "1; DROP TABLE answers"}, 400, "choice must be an option number"),
    ({"item": "cont-9999"}, 400, "unknown item"),
    ({"item": "x" * 300}, 400, "longer than 200 characters"),
    ({"extra": "1"}, 400, "unexpected form field(s): extra"),
])
def test_a_tampered_answer_is_refused_and_nothing_is_stored(server, store, tamper, status, message):
    browser = Browser(server.url)
    browser.start()
    page = browser.page()
    got, _, body, headers = browser.send("/answer", {"csrf": page.csrf, "item": page.item, "choice": "0", **tamper})
    assert got == status and message in body
    assert headers.get_content_type() == "text/plain" and "Traceback" not in body
    assert store.answers() == []


def test_another_items_id_or_a_replayed_form_is_a_conflict(server, store):
    browser = Browser(server.url)
    browser.start()
    page = browser.page()
    other = next(i for i in store.by_id if i != page.item)
    assert browser.send("/answer", {"csrf": page.csrf, "item": other, "choice": "0"})[0] == 409
    assert answer(browser, page)[0] == 200
    assert answer(browser, page, "2")[0] == 409  # the back button and a resubmit
    assert len(store.answers()) == 1 and store.answers()[0]["choice"] == 0


def test_a_token_from_another_participant_is_refused(server, store):
    first, second = Browser(server.url), Browser(server.url)
    first.start()
    second.start()
    stolen = first.page()
    own = second.page()
    got, _, body, _ = second.send("/answer", {"csrf": stolen.csrf, "item": own.item, "choice": "0"})
    assert got == 400 and "CSRF" in body and store.answers() == []


def test_forms_without_cookies_or_tokens_are_refused(server, store):
    bare = Browser(server.url)
    assert bare.send("/start", {"csrf": "a" * 40})[0] == 400  # no browser cookie to check the token against
    assert bare.send("/answer", {"csrf": "a" * 40, "item": "cont-0000", "choice": "0"})[0] == 403
    assert bare.send("/start", {"csrf": "a", "csrf2": "b"})[0] == 400
    assert bare.send("/start", raw=b"csrf=" + b"x" * 20000)[0] == 413
    assert store.participants() == [] and store.answers() == []


def test_a_participant_can_come_back_with_their_code(server, store):
    browser = Browser(server.url)
    browser.start()
    answer(browser, browser.page())
    code = store.participants()[0]["id"]
    later = Browser(server.url)
    _, _, html, _ = later.send("/")
    status, url, _, _ = later.send("/resume", {"csrf": read_form_token(html), "code": code})
    assert status == 200 and url.endswith("/item")
    assert later.page().item != store.answers()[0]["item"]  # the next item, not the answered one
    assert later.send("/resume", {"csrf": read_form_token(html), "code": "p-" + "x" * 16})[0] == 404


def test_answers_faster_than_the_limit_get_a_429(eval_dir, tmp_path):
    store, _ = open_study(eval_dir, tmp_path / "fast", StudyConfig(items_per_participant=5, answers_per_minute=2))
    with StudyServer(store, quiet=True) as server:
        browser = Browser(server.url)
        browser.start()
        for _ in range(2):
            assert answer(browser, browser.page())[0] == 200
        status, _, body, headers = answer(browser, browser.page())
        assert status == 429 and int(headers["Retry-After"]) >= 1 and "wait" in body
    assert len(store.answers()) == 2
    store.close()


def test_an_internal_error_shows_no_stack_trace(server, store, monkeypatch):
    browser = Browser(server.url)
    browser.start()
    page = browser.page()

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals /home/user/db")

    monkeypatch.setattr(store, "record", broken)
    status, _, body, _ = answer(browser, page)
    assert status == 500 and "internal error" in body
    assert "secret internals" not in body and "Traceback" not in body


def test_only_loopback_unless_allowed():
    assert host_warning("127.0.0.1", False) is None and host_warning("localhost", False) is None
    with pytest.raises(ValueError, match="--allow-remote"):
        host_warning("0.0.0.0", False)
    assert "every network interface" in host_warning("0.0.0.0", True)


def test_every_kind_of_note_reads_back_as_the_judge_read_it(make_eval, tmp_path, hostile):
    """Labels, a formula, the model's own words, or nothing: the page shows each under the training judge's header,
    and the HTML reads back into the explanation the eval gave the judge."""
    from pcdrl.simulators.render import Explanation

    store, _ = open_study(make_eval(tmp_path / "eval", formula=True), tmp_path / "study",
                          StudyConfig(items_per_participant=5))
    with StudyServer(store, quiet=True) as server:
        browser = Browser(server.url)
        browser.start()
        pid = store.participants()[0]["id"]
        kinds = {}
        while (step := store.next_step(pid)) is not None:
            status, _, html, _ = browser.send("/item")
            page = read_item_page(html)
            assert page.item == step.item["id"] and page.options == step.item["options"]
            shown = step.item["shown"][step.condition]
            expected = {"none": None, "labels": Explanation(labels=tuple(shown.get("labels", ()))),
                        "formula": Explanation(formula=shown.get("formula", "")),
                        "oracle": Explanation(oracle=shown.get("oracle"))}[shown["kind"]]
            assert page.explanation() == expected
            kinds[shown["kind"]] = html
            assert answer(browser, page)[0] == 200
    assert set(kinds) == {"none", "labels", "formula", "oracle"}
    assert "The model&#39;s state satisfies this formula over concepts:" in kinds["formula"]
    assert "The model is about to write:" in kinds["oracle"] and "No note for this question." in kinds["none"]
    for html in kinds.values():  # blinded: no page names its condition (the oracle's own words show what it is)
        assert not any(name in html for name in ("prior", "random", "pretrained", "rl/0"))
    store.close()
