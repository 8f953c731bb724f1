"""An append-only JSONL journal of finished work, so an interrupted job resumes where it stopped.

Each line is ``{"key": ..., "value": ...}``. Lines are flushed and fsynced in batches; a line cut
short by a kill is ignored on reading (it is the one piece of work that gets redone).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable


def work_key(*parts: Any) -> str:
    """A stable key for a unit of work: the sha1 of its JSON-encoded inputs."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: dict[str, Any] = {}
        self.torn_lines = 0
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                    self.done[record["key"]] = record["value"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.torn_lines += 1  # a write cut short by a kill; the work is redone
        self._handle = open(self.path, "a")
        if self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            self._handle.write("\n")  # end a torn line so the next record starts clean

    def __contains__(self, key: str) -> bool:
        return key in self.done

    def get(self, key: str, default: Any = None) -> Any:
        return self.done.get(key, default)

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        lines = []
        for key, value in items:
            self.done[key] = value
            lines.append(json.dumps({"key": key, "value": value}))
        if lines:
            self._handle.write("\n".join(lines) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
