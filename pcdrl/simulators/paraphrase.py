"""Rule-based paraphrases of concept labels, for the paraphrased-labels control of `pcdrl eval`.

If RL's gain came from the judge matching a label's exact wording (its framing, word order or
quoting) rather than what it says, the gain would vanish when the same content is worded
differently. The rules keep the content and change the surface: the framing phrase, the order of
listed items, the quoting, and a few common words. Pure functions; deterministic.
"""
from __future__ import annotations

import re

# Token-statistics labels (pcdrl/pcd/examples.py) read: the words "of", "with", "and".
_WORD_LIST = re.compile(r'^\s*the words\s+(.+?)\s*$', re.IGNORECASE)
# Output-centric labels (pcdrl/pcd/output_labels.py) read: then "the", "a"; both-sided ones: on "of", "and"; then "the".
_OUTPUT = re.compile(r'^\s*then\s+(.+?)\s*$', re.IGNORECASE)
_BOTH = re.compile(r'^\s*(.+?);\s*then\s+(.+?)\s*$', re.IGNORECASE)
_ON = re.compile(r'^\s*on\s+(.+?)\s*$', re.IGNORECASE)
_QUOTED = re.compile(r'"([^"]*)"')
_SYNONYMS = {
    "words": "terms", "word": "term", "about": "concerning", "names": "proper nouns", "name": "proper noun",
    "numbers": "numerals", "number": "numeral", "text": "writing", "related": "linked", "phrases": "expressions",
    "references": "mentions", "code": "source code", "questions": "queries", "places": "locations",
}


def paraphrase_label(label: str) -> str:
    """The same content, worded differently.

    >>> paraphrase_label('the words "of", "with", "and"')
    "tokens such as 'and', 'with' and 'of'"
    >>> paraphrase_label('on "of", "and"; then "the", "a"')
    "after tokens such as 'and' and 'of', comes 'a' or 'the'"
    """
    both = _BOTH.match(label)
    if both and _QUOTED.findall(both.group(2)):
        return f"after {_input_side(both.group(1))}, comes {_joined(_QUOTED.findall(both.group(2)), 'or')}"
    output = _OUTPUT.match(label)
    if output and _QUOTED.findall(output.group(1)):
        return f"next comes {_joined(_QUOTED.findall(output.group(1)), 'or')}"
    listed = _WORD_LIST.match(label)
    if listed and _QUOTED.findall(listed.group(1)):
        return f"tokens such as {_joined(_QUOTED.findall(listed.group(1)), 'and')}"
    return "related to: " + _swap_words(label.strip())


def _joined(words: list[str], conjunction: str) -> str:
    """'c', 'b' and 'a': the listed order reversed and the quoting changed."""
    items = [f"'{w}'" for w in reversed(words)]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def _input_side(text: str) -> str:
    """The input side of a both-sided label: listed words (``on "of", "and"``) or an explainer LM's text."""
    listed = _ON.match(text) or _WORD_LIST.match(text)
    if listed and _QUOTED.findall(listed.group(1)):
        return f"tokens such as {_joined(_QUOTED.findall(listed.group(1)), 'and')}"
    return _swap_words(text.strip())


def _swap_words(text: str) -> str:
    def swap(match: re.Match) -> str:
        word = match.group(0)
        replacement = _SYNONYMS.get(word.lower())
        if replacement is None:
            return word
        return replacement.capitalize() if word[0].isupper() else replacement

    return re.sub(r"[A-Za-z]+", swap, text)
