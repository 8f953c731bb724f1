"""Reads a study page back into what it shows: the form's hidden fields, the explanation, the question, the options.

A simulated participant sees exactly what a person sees (the served HTML), so a page that dropped or garbled a
label, an option or a token would show up as a simulated answer that no longer matches the eval.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

from pcdrl.simulators.render import Explanation

CAPTURED = {"label", "formula", "oracle", "question", "option-text"}


@dataclass
class ItemPage:
    csrf: str = ""
    item: str = ""
    kind: str = ""
    labels: list[str] = field(default_factory=list)
    formula: str = ""
    oracle: str = ""
    question: str = ""
    options: list[str] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    """The radio buttons' values, in page order."""

    def explanation(self) -> Explanation | None:
        """The explanation as the judge reads it (None for a page with no note: the judge's prior)."""
        if self.kind == "labels":
            return Explanation(labels=tuple(self.labels))
        if self.kind == "formula":
            return Explanation(formula=self.formula)
        if self.kind == "oracle":
            return Explanation(oracle=self.oracle)
        return None


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.page = ItemPage()
        self.start_csrf = ""
        self._capture: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag == "section" and "explanation" in classes:
            self.page.kind = attrs.get("data-kind", "")
        if tag == "input" and attrs.get("type") == "hidden" and attrs.get("name") in ("csrf", "item"):
            setattr(self.page, attrs["name"], attrs.get("value", ""))
        if tag == "input" and attrs.get("type") == "radio" and attrs.get("name") == "choice":
            self.page.choices.append(attrs.get("value", ""))
        hit = classes & CAPTURED
        if hit and self._capture is None:
            self._capture, self._text = hit.pop(), []

    def handle_endtag(self, tag):
        if self._capture is not None and tag in ("li", "p", "legend", "span"):
            text, kind = "".join(self._text), self._capture
            self._capture = None
            if kind == "label":
                self.page.labels.append(text)
            elif kind == "option-text":
                self.page.options.append(text)
            else:
                setattr(self.page, kind, text)

    def handle_data(self, data):
        if self._capture is not None:
            self._text.append(data)


def read_item_page(html: str) -> ItemPage:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    page = reader.page
    if not (page.csrf and page.item and page.options and len(page.options) == len(page.choices)):
        raise ValueError("not an item page: no answer form with csrf, item and options")
    return page


def read_form_token(html: str) -> str:
    """The csrf field of the first form on a page (the start page's)."""
    reader = _Reader()
    reader.feed(html)
    return reader.page.csrf
