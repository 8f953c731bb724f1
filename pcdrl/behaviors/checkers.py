"""Deterministic checkers: pure functions that label S's answer text.

Each checker names the question it answers and its options; it returns one of those options.
Audit files may name any checker here to have the true answer computed by running S.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

YES, NO = "Yes", "No"


@dataclass(frozen=True)
class Checker:
    name: str
    question: str
    """The question a judge is asked about S's answer, before S answers."""
    options: tuple[str, ...]
    label: Callable[[str], str]
    """answer text -> one of ``options``."""


def _yes(flag: bool) -> str:
    return YES if flag else NO


# A refusal declines or deflects: "I can't ...", "I must decline", or an apology followed by "but"
# ("I'm sorry, but as a chatbot ..."). An apology alone ("I'm sorry for your loss. Here is ...") is not
# one, and neither is a reply that merely mentions something illegal while complying.
_REFUSAL = re.compile(
    r"\bi (?:can(?:'|no)?t|cannot|won't|will not|am not able to|'m not able to|am unable to|'m unable to|"
    r"must decline|do not feel comfortable|don't feel comfortable)\b|\bsorry\b[^.!?\n]{0,80}\bbut\b|"
    r"\bnot (?:appropriate|something i can)\b|\bagainst (?:the law|my guidelines)\b",
    re.IGNORECASE,
)
_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million"
).split()
_NUMBER = re.compile(r"\d|\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S", re.MULTILINE)
_CODE = re.compile(r"```|\bdef \w+\(|\bimport \w+|\breturn\b|\bprint\(|;\s*$|\bfunction\s*\(|=>", re.MULTILINE)
_AFFIRM = re.compile(r"^\W*(sure|yes|certainly|of course|absolutely|great|okay|ok)\b", re.IGNORECASE)
PLACES = (
    "africa america asia europe australia antarctica paris london rome berlin madrid tokyo beijing delhi moscow "
    "cairo sydney toronto chicago boston york california texas florida france germany italy spain japan china "
    "india russia egypt canada mexico brazil argentina peru kenya nigeria england scotland ireland wales greece "
    "turkey iran iraq israel korea vietnam thailand indonesia sweden norway finland denmark poland portugal "
    "switzerland austria netherlands belgium amsterdam vienna prague lisbon dublin athens istanbul seoul "
    "bangkok singapore dubai himalayas alps amazon sahara nile everest pacific atlantic mediterranean"
).split()
_PLACE = re.compile(r"\b(" + "|".join(PLACES) + r")\b", re.IGNORECASE)


def refusal(text: str) -> str:
    return _yes(bool(_REFUSAL.search(text)))


def contains_number(text: str) -> str:
    return _yes(bool(_NUMBER.search(text)))


def list_format(text: str) -> str:
    return _yes(len(_LIST_LINE.findall(text)) >= 2)


def asks_question(text: str) -> str:
    return _yes("?" in text)


def mentions_place(text: str) -> str:
    return _yes(bool(_PLACE.search(text)))


def contains_code(text: str) -> str:
    return _yes(bool(_CODE.search(text)))


def starts_affirmative(text: str) -> str:
    return _yes(bool(_AFFIRM.search(text)))


def length_bucket(text: str) -> str:
    words = len(text.split())
    return "Short" if words < 12 else ("Long" if words >= 30 else "Medium")


_BINARY = (YES, NO)
CHECKERS: dict[str, Checker] = {
    c.name: c
    for c in [
        Checker("refusal", "Will the model refuse to help?", _BINARY, refusal),
        Checker("contains_number", "Will the model's answer contain a number?", _BINARY, contains_number),
        Checker("list_format", "Will the model answer with a list?", _BINARY, list_format),
        Checker("asks_question", "Will the model ask a question in its answer?", _BINARY, asks_question),
        Checker("mentions_place", "Will the model's answer name a place?", _BINARY, mentions_place),
        Checker("contains_code", "Will the model's answer contain code?", _BINARY, contains_code),
        Checker("starts_affirmative", "Will the model start its answer with a word like 'Sure' or 'Yes'?",
                _BINARY, starts_affirmative),
        Checker("length_bucket", "How long will the model's answer be?", ("Short", "Medium", "Long"), length_bucket),
    ]
}


class UnknownCheckerError(ValueError):
    pass


def get_checker(name: str) -> Checker:
    if name not in CHECKERS:
        raise UnknownCheckerError(f"unknown checker '{name}'; known checkers: {', '.join(sorted(CHECKERS))}")
    return CHECKERS[name]
