"""An append-only JSONL journal of finished work, so an interrupted job resumes where it stopped.

Each line is ``{"key": ..., "value": ...}``, ASCII (json escapes the rest); keys are strings (`work_key`), values
anything JSON holds. Lines are flushed and fsynced in batches. A kill mid-write leaves the last line cut short:
on reading it is ignored (the one piece of work that gets redone), and the next writer ends it with a newline,
so after a resume such torn lines also sit mid-file. A power cut may also leave NUL bytes where unsynced bytes were
to go (a whole record followed by NULs is still read). A torn line is a prefix of a record, or holds a NUL (which
a journal never writes: json escapes it); any other line that is not a record (text no write of a journal leaves,
JSON that is not a record) means the file is not a journal or was damaged: a `JournalError` that names the file
and the line.

`get` returns a value as it reads back from the file (lists where tuples went in, a copy, not the caller's
object), in the run that writes it as in the run that resumes from it, so the two runs cannot differ.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

RECORD_START = b'{"key": '
"""How every line `put_many` writes begins (json.dumps keeps the dict's order)."""


class JournalError(ValueError):
    pass


def work_key(*parts: Any) -> str:
    """A stable key for a unit of work: the sha1 of its JSON-encoded inputs."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def record_line(key: str, value: Any) -> str:
    """The line `put_many` writes for one record (no newline); TypeError or ValueError if JSON cannot hold it."""
    if not isinstance(key, str):
        raise TypeError(f"a journal key is a string (see work_key), got {type(key).__name__}")
    return json.dumps({"key": key, "value": value})


def parse_line(line: bytes) -> tuple[str, Any] | None:
    """A record line's (key, value), or None for a line a write cut short could leave; a ValueError that says what
    is wrong for any other line."""
    cut = line.rstrip(b"\0")
    try:
        record = json.loads(cut.decode("utf-8"))
    except (ValueError, RecursionError):  # bad UTF-8 and bad JSON (and ints past 4300 digits) are ValueErrors
        if b"\0" in line or cut.startswith(RECORD_START) or RECORD_START.startswith(cut):
            return None
        raise ValueError("not valid JSON, and not the start of a record cut short") from None
    if not (isinstance(record, dict) and record.keys() == {"key", "value"}):
        raise ValueError('valid JSON but not a {"key": ..., "value": ...} record')
    if not isinstance(record["key"], str):
        raise ValueError(f"a record whose key is not a string ({type(record['key']).__name__})")
    return record["key"], record["value"]


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: dict[str, Any] = {}
        self.torn_lines = 0
        data = self.path.read_bytes() if self.path.exists() else b""
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                record = parse_line(line)
            except ValueError as err:
                raise JournalError(
                    f"{self.path}:{number}: {err}; this file is not a journal of finished work, or it was damaged. "
                    "Move it aside to redo all of its work, or delete that line to redo only its own") from None
            if record is None:
                self.torn_lines += 1  # a write cut short by a kill; the work is redone
            else:
                self.done[record[0]] = record[1]
        self._handle = open(self.path, "a")
        # End a torn last line, so the next record starts clean; also after a write that failed midway.
        self._torn = bool(data) and not data.endswith(b"\n")

    def __contains__(self, key: str) -> bool:
        return key in self.done

    def get(self, key: str, default: Any = None) -> Any:
        return self.done.get(key, default)

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Write the records and fsync; a value JSON cannot hold raises before anything is written or kept."""
        lines = [record_line(key, value) for key, value in items]
        if not lines:
            return
        try:
            self._handle.write(("\n" if self._torn else "") + "\n".join(lines) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except BaseException:
            self._torn = True  # part of the batch may be on disk: the next batch starts on a new line
            raise
        self._torn = False
        for line in lines:
            record = json.loads(line)  # what a resumed run reads back, so both runs see the same values
            self.done[record["key"]] = record["value"]

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
