"""The study's SQLite database (WAL): the frozen config and item set, the participants and their answers.

Every write is one transaction that commits before the server answers, with synchronous=FULL, so an answer the
participant saw accepted survives a killed server. One row per (participant, item): a resubmitted form is told
it was already answered, never stored twice.

    meta(key, value)                  config, items (the frozen set), eval_dir, eval_sha256, secret, created
    participants(id, slot, agent, created, plan)
    served(participant, position, served_at)         when each item was first shown (for the time taken)
    answers(participant, item, condition, position, choice, correct, seconds, answered_at)
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pcdrl.runtime.config_loader import from_dict, to_dict
from pcdrl.study import design
from pcdrl.study.config import StudyConfig

DB_NAME = "study.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY, slot INTEGER NOT NULL UNIQUE, agent TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL, plan TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS served (
    participant TEXT NOT NULL REFERENCES participants(id), position INTEGER NOT NULL, served_at REAL NOT NULL,
    PRIMARY KEY (participant, position));
CREATE TABLE IF NOT EXISTS answers (
    participant TEXT NOT NULL REFERENCES participants(id), item TEXT NOT NULL, condition TEXT NOT NULL,
    position INTEGER NOT NULL, choice INTEGER NOT NULL, correct INTEGER NOT NULL, seconds REAL NOT NULL,
    answered_at REAL NOT NULL, PRIMARY KEY (participant, item));
"""


class StudyStoreError(ValueError):
    pass


@dataclass(frozen=True)
class Step:
    """A participant's next item: its place in their plan, the item, and the (hidden) condition it is shown under."""

    position: int
    total: int
    item: dict
    condition: str


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the page says "saved"
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


class StudyStore:
    """One study folder's database. Thread-safe: the server's threads share one connection under a lock."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        if not self.path.is_file():
            raise StudyStoreError(f"{self.folder}: no {DB_NAME}; start a study with `pcdrl study serve EVAL_DIR "
                                  f"--study {self.folder}`")
        self._lock = threading.Lock()
        self._db = _connect(self.path)
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        missing = [k for k in ("config", "items", "secret") if k not in meta]
        if missing:
            raise StudyStoreError(f"{self.path}: not a complete study database (no {missing})")
        self.config = from_dict(StudyConfig, json.loads(meta["config"]), source=str(self.path))
        self.frozen = json.loads(meta["items"])
        self.meta = {k: v for k, v in meta.items() if k not in ("config", "items", "secret")}
        self.secret = bytes.fromhex(meta["secret"])
        self.items = self.frozen["items"]
        self.conditions = self.frozen["conditions"]
        self.per_participant = self.frozen["items_per_participant"]
        self.by_id = {item["id"]: item for item in self.items}

    @staticmethod
    def create(folder: str | Path, cfg: StudyConfig, frozen: dict, eval_dir: str, eval_sha256: str) -> "StudyStore":
        """Freeze the config and item set into a new database. Refuses a folder that already holds one."""
        folder = Path(folder)
        path = folder / DB_NAME
        if path.exists():
            raise StudyStoreError(f"{path} exists: this folder already holds a study")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (DB_NAME + ".creating")
        tmp.unlink(missing_ok=True)  # our own leftover from a creation that was killed
        connection = sqlite3.connect(tmp, isolation_level=None)
        connection.executescript(SCHEMA)
        meta = {"config": json.dumps(to_dict(cfg)), "items": json.dumps(frozen), "eval_dir": str(eval_dir),
                "eval_sha256": eval_sha256, "secret": secrets.token_hex(32), "created": str(time.time()),
                "format": "pcdrl-study/1"}
        with connection:
            connection.execute("BEGIN")
            connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        connection.close()
        tmp.rename(path)  # the study exists only once it is whole
        return StudyStore(folder)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- participants -----------------------------------------------------------------------

    def new_participant(self, agent: str = "") -> str:
        """A random id and the next slot of the design (one transaction: two starts never share a slot)."""
        participant = "p-" + secrets.token_urlsafe(12)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                slot = self._db.execute("SELECT COALESCE(MAX(slot) + 1, 0) FROM participants").fetchone()[0]
                pairs = design.plan(len(self.items), self.conditions, self.per_participant, self.config.seed, slot)
                plan = [[self.items[i]["id"], condition] for i, condition in pairs]
                self._db.execute("INSERT INTO participants (id, slot, agent, created, plan) VALUES (?, ?, ?, ?, ?)",
                                 (participant, slot, agent, time.time(), json.dumps(plan)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return participant

    def exists(self, participant: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM participants WHERE id = ?", (participant,)).fetchone() is not None

    def _plan(self, participant: str) -> list[list[str]]:
        row = self._db.execute("SELECT plan FROM participants WHERE id = ?", (participant,)).fetchone()
        if row is None:
            raise KeyError(participant)
        return json.loads(row[0])

    def next_step(self, participant: str, now: float | None = None) -> Step | None:
        """The first unanswered item of the participant's plan (None when done); records when it was first shown."""
        with self._lock:
            plan = self._plan(participant)
            done = {r[0] for r in self._db.execute("SELECT item FROM answers WHERE participant = ?", (participant,))}
            for position, (item_id, condition) in enumerate(plan):
                if item_id not in done:
                    self._db.execute("INSERT OR IGNORE INTO served (participant, position, served_at) VALUES (?, ?, ?)",
                                     (participant, position, time.time() if now is None else now))
                    return Step(position, len(plan), self.by_id[item_id], condition)
        return None

    def progress(self, participant: str) -> tuple[int, int]:
        with self._lock:
            total = len(self._plan(participant))
            done = self._db.execute("SELECT COUNT(*) FROM answers WHERE participant = ?", (participant,)).fetchone()[0]
        return done, total

    def record(self, participant: str, step: Step, choice: int, now: float | None = None) -> bool:
        """Store one answer; False if this item was already answered (nothing is stored twice)."""
        now = time.time() if now is None else now
        with self._lock:
            served = self._db.execute("SELECT served_at FROM served WHERE participant = ? AND position = ?",
                                      (participant, step.position)).fetchone()
            seconds = max(0.0, now - served[0]) if served else 0.0
            try:
                self._db.execute(
                    "INSERT INTO answers (participant, item, condition, position, choice, correct, seconds, answered_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (participant, step.item["id"], step.condition, step.position, choice,
                     int(choice == step.item["answer"]), round(seconds, 3), now))
            except sqlite3.IntegrityError:
                return False
        return True

    # --- reading back (report, tests) --------------------------------------------------------

    def answers(self) -> list[dict]:
        """Every stored answer with its participant's agent ('' for a person)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT a.participant, p.agent, a.item, a.condition, a.position, a.choice, a.correct, a.seconds, "
                "a.answered_at FROM answers a JOIN participants p ON p.id = a.participant "
                "ORDER BY a.answered_at, a.participant").fetchall()
        keys = ("participant", "agent", "item", "condition", "position", "choice", "correct", "seconds", "answered_at")
        return [dict(zip(keys, row)) for row in rows]

    def participants(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT id, slot, agent, created, plan FROM participants ORDER BY slot").fetchall()
        return [{"id": i, "slot": s, "agent": a, "created": c, "planned": len(json.loads(p))} for i, s, a, c, p in rows]

    @property
    def training_judge(self) -> str:
        """The eval's training judge; the first judge when the eval was given other judges (none has that role)."""
        judges = self.frozen["judges"]
        return next((name for name, j in judges.items() if j.get("role") == "training"), next(iter(judges)))

    def block_size(self) -> int:
        return design.block_size(len(self.items), len(self.conditions), self.per_participant)
