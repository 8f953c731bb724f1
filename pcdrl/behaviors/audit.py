"""Custom audit files: JSONL questions that a team writes for its own audit.

One JSON object per line (blank lines and lines starting with # are skipped):

    {"prompt": "How do I pick a lock?", "checker": "refusal"}
    {"prompt": "Name a fruit.", "question": "Will it name an apple?", "options": ["Yes", "No"], "answer": "No"}

Fields:
- prompt (required): what S reads, as a user chat message (or raw text with "chat": false).
- question, options: the question and at least two distinct options. With a checker they default
  to the checker's own.
- exactly one of: answer (an option's text or its index) or checker (a name in pcdrl/behaviors/checkers.py;
  S is run and the checker computes the answer).
- optional: id (a string or an integer; default FILE-STEM/LINE), chat (default true), read_last (default 8),
  split ("train" or "test"), max_new_tokens (default 48).
The file is UTF-8 (a BOM is allowed) and lines end at "\n" only: a raw U+2028 inside a JSON string is text.
Each line is validated on its own; an error names the file, the line and the field.
"""
from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path

from pcdrl.behaviors.checkers import CHECKERS, get_checker
from pcdrl.behaviors.items import Item
from pcdrl.behaviors.subject import chat_input_ids, generate_cached
from pcdrl.runtime.config_loader import did_you_mean

FIELDS = {"id", "prompt", "question", "options", "answer", "checker", "chat", "read_last", "split", "max_new_tokens"}


class AuditFileError(ValueError):
    pass


@dataclass
class AuditEntry:
    id: str
    prompt: str
    question: str
    options: list[str]
    answer: int | None
    checker: str | None
    chat: bool
    read_last: int
    split: str
    max_new_tokens: int
    line: int


def _fail(path, line: int, field: str, message: str) -> AuditFileError:
    return AuditFileError(f"{path}:{line}: field '{field}': {message}")


def _lone_surrogate(text: str) -> str:
    """The first lone surrogate in text, as its escape (``\\ud800``), or ""."""
    found = next((c for c in text if "\ud800" <= c <= "\udfff"), "")
    return f"\\u{ord(found):04x}" if found else ""


def parse_line(raw: dict, path, line: int) -> AuditEntry:
    if not isinstance(raw, dict):
        raise AuditFileError(f"{path}:{line}: expected a JSON object, got {type(raw).__name__}")
    for key, value in raw.items():
        surrogate = _lone_surrogate(json.dumps({key: value}, ensure_ascii=False))
        if surrogate:  # "\ud800" parses, but no UTF-8 writer (a terminal, a tokenizer, items.jsonl) can write it
            raise _fail(path, line, key.encode("utf-8", "backslashreplace").decode(),
                        f"holds a lone surrogate {surrogate}, half of a UTF-16 pair and not a character; escape "
                        "the whole pair or write the character itself")
        if key not in FIELDS:
            known = sorted(FIELDS)
            raise _fail(path, line, key, f"unknown field (known: {', '.join(known)}){did_you_mean(key, known)}")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _fail(path, line, "prompt", "required, a non-empty string")
    if ("answer" in raw) == ("checker" in raw):
        raise _fail(path, line, "answer", "give exactly one of 'answer' (the true option) or 'checker' (run S)")
    checker = None
    if "checker" in raw:
        if not isinstance(raw["checker"], str):
            raise _fail(path, line, "checker", f"must be one checker name (a string), got {type(raw['checker']).__name__}; "
                        f"known: {', '.join(sorted(CHECKERS))}")
        if raw["checker"] not in CHECKERS:
            raise _fail(path, line, "checker", f"unknown checker '{raw['checker']}'; known: {', '.join(sorted(CHECKERS))}")
        checker = get_checker(raw["checker"])
    question = raw.get("question", checker.question if checker else None)
    if not isinstance(question, str) or not question.strip():
        raise _fail(path, line, "question", "required (a non-empty string) unless a checker supplies it")
    options = raw.get("options", list(checker.options) if checker else None)
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) and o.strip() for o in options):
        raise _fail(path, line, "options", "required: a list of at least two non-empty strings")
    duplicates = sorted({o for o in options if options.count(o) > 1})
    if duplicates:
        raise _fail(path, line, "options", f"duplicate options {duplicates}; every option must differ")
    if checker and not {o.lower() for o in checker.options} <= {o.lower() for o in options}:
        raise _fail(path, line, "options", f"checker '{checker.name}' answers one of {list(checker.options)}; "
                                           "include them all (case does not matter)")
    twins = sorted({o for o in options if [p.lower() for p in options].count(o.lower()) > 1})
    if checker and twins:  # the checker's label is matched without case: it would name more than one option
        raise _fail(path, line, "options", f"options {twins} differ only in case, so checker '{checker.name}' "
                                           "would match more than one; keep one of them")
    answer = None
    if "answer" in raw:
        value = raw["answer"]
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise _fail(path, line, "answer", "an option's text or its 0-based index")
        if isinstance(value, int):
            if not 0 <= value < len(options):
                raise _fail(path, line, "answer", f"index {value} outside the {len(options)} options")
            answer = value
        elif value not in options:
            raise _fail(path, line, "answer", f"'{value}' is not one of the options {options}")
        else:
            answer = options.index(value)
    split = raw.get("split", "")
    if split not in ("", "train", "test"):
        raise _fail(path, line, "split", f"'{split}' must be 'train' or 'test' (or left out)")
    for field, default in (("read_last", 8), ("max_new_tokens", 48)):
        value = raw.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(path, line, field, f"a positive integer, got {value!r}")
    if not isinstance(raw.get("chat", True), bool):
        raise _fail(path, line, "chat", "true or false")
    given = raw.get("id", f"{Path(path).stem}/{line:04d}")
    if isinstance(given, bool) or not isinstance(given, (str, int)) or not str(given).strip():
        raise _fail(path, line, "id", "a non-empty string or an integer, got "
                                      f"{repr(given) if isinstance(given, str) else type(given).__name__}")
    return AuditEntry(
        id=str(given), prompt=prompt, question=question,
        options=list(options), answer=answer, checker=checker.name if checker else None,
        chat=raw.get("chat", True), read_last=raw.get("read_last", 8), split=split,
        max_new_tokens=raw.get("max_new_tokens", 48), line=line,
    )


def read_lines(path: Path) -> list[str]:
    """The file's lines, split at "\\n" only: `str.splitlines` also splits at U+2028, U+0085 and others, which
    JSON allows raw inside a string, and then the line numbers no longer match an editor's."""
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise AuditFileError(f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column {column}); "
                             "an audit file is UTF-8 JSONL") from None


def parse_json(text: str, path: Path, line: int):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise AuditFileError(f"{path}:{line}: not valid JSON ({err.msg} at column {err.colno})") from None
    except RecursionError:
        raise AuditFileError(f"{path}:{line}: not valid JSON (nested too deeply)") from None
    except ValueError as err:  # an integer of more than 4300 digits
        raise AuditFileError(f"{path}:{line}: not valid JSON ({str(err).split(';')[0]})") from None


def read_audit_file(path: str | Path) -> list[AuditEntry]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audit file {path} does not exist (audit_files)")
    entries, ids = [], set()
    for number, text in enumerate(read_lines(path), start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        raw = parse_json(text, path, number)
        entry = parse_line(raw, path, number)
        if entry.id in ids:
            raise _fail(path, number, "id", f"'{entry.id}' is used by an earlier line")
        ids.add(entry.id)
        entries.append(entry)
    if not entries:
        raise AuditFileError(f"{path}: no questions in the file")
    return entries


def read_audit_files(paths: list[str | Path]) -> dict[str, list[AuditEntry]]:
    """Every audit file of a data config, checked line by line and for ids shared across files: items are named
    `audit/<id>`, so an id used in two files would make two items of one name."""
    seen: dict[str, str] = {}
    read = {}
    for path in paths:
        entries = read_audit_file(path)
        for entry in entries:
            where = f"{path}:{entry.line}"
            if entry.id in seen:
                raise AuditFileError(f"{where}: field 'id': '{entry.id}' is also used at {seen[entry.id]}; ids must be "
                                     "unique across audit_files (each becomes the item id audit/<id>)")
            seen[entry.id] = where
        read[str(path)] = entries
    return read


def build_audit_items(path: str | Path, backend, tokenizer, model: str, layer: int, journal) -> list[Item]:
    entries = read_audit_file(path)
    inputs = [chat_input_ids(tokenizer, e.prompt, chat=e.chat) for e in entries]
    answers: list[str] = [""] * len(entries)
    for cap in sorted({e.max_new_tokens for e in entries}):  # one generation pass per answer cap
        rows = [i for i, e in enumerate(entries) if e.max_new_tokens == cap]
        texts = generate_cached(backend, [inputs[i] for i in rows], cap, journal, description=f"S answers {Path(path).name}")
        for i, text in zip(rows, texts):
            answers[i] = text
    items = []
    for entry, ids, behaviour in zip(entries, inputs, answers):
        answer = entry.answer
        if entry.checker:
            label = get_checker(entry.checker).label(behaviour)
            answer = [o.lower() for o in entry.options].index(label.lower())
        items.append(Item(
            id=f"audit/{entry.id}", family="audit", attribute=Path(path).stem, group=f"audit/{entry.id}",
            model=model, layer=layer, input_ids=ids, read_positions=list(range(max(0, len(ids) - entry.read_last), len(ids))),
            text=entry.prompt, question=entry.question, options=entry.options, answer=answer, behaviour=behaviour,
            source=str(path), split=entry.split, meta={"line": entry.line, "checker": entry.checker or ""},
        ))
    return items
