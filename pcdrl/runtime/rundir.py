"""The run folder every command writes: config.yaml, metrics.jsonl, summary.json, checkpoints/.

config.yaml's first line names the command that made the folder (``# pcdrl train``, ``# pcdrl eval
runs/a/checkpoints/step_000010``); the rest is the resolved config. That is how a command tells its
own run (which it may resume) from anything else, which it must never overwrite.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import yaml

from pcdrl.runtime.atomic import aside_name, atomic_write_json, atomic_write_text, move_aside
from pcdrl.runtime.config_loader import dump_yaml, from_dict

RESUMABLE_VERBS = ("pcdrl train", "pcdrl pretrain")
"""Verbs with a --resume flag; the others resume from their journal when rerun with the same config."""
ALWAYS_MAY_DIFFER = ("threads",)
"""Config fields (by last name, at any depth) that only say where a run executes, never what it computes."""
SWEEP_BOOKKEEPING = frozenset({"stderr.txt", "trial.json"})
"""What `pcdrl sweep` writes next to a trial's run; a trial folder holding only these is still free."""


class RunFolderError(ValueError):
    """--out holds something this command must not overwrite."""


class RunDir:
    """One run's outputs. Metrics append line by line so a killed run keeps what it logged."""

    def __init__(self, out: str | Path, config: Any | None = None, command: str = "",
                 may_differ: tuple[str, ...] = ()):
        self.path = Path(out)
        if config is not None:
            check_out(self.path, command, config, may_differ)  # before anything is written
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"
        self.command = command
        if config is not None:
            atomic_write_text(self.path / "config.yaml", (f"# {command}\n" if command else "") + dump_yaml(config))
        self._metrics = open(self.path / "metrics.jsonl", "a", buffering=1)

    def log(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **{k: _plain(v) for k, v in record.items()}}
        self._metrics.write(json.dumps(record) + "\n")

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.path / "summary.json", {k: _plain(v) for k, v in summary.items()})

    def close(self) -> None:
        self._metrics.close()


def verb_of(command: str) -> str:
    """``pcdrl data build x`` -> ``pcdrl data build``; ``pcdrl eval a b`` -> ``pcdrl eval``."""
    words = command.split()
    return " ".join(words[:3] if words[1:2] == ["data"] else words[:2])


def _inputs_of(command: str) -> list[str]:
    """The paths a command line names after its verb, resolved so that `runs/a` and `./runs/a/` agree."""
    return [str(Path(word).resolve()) for word in command.split()[len(verb_of(command).split()):]]


def read_header(folder: Path) -> tuple[str, str] | None:
    """(the command line, the config text) of the run in ``folder``, or None when it holds no config.yaml."""
    saved = folder / "config.yaml"
    if not saved.is_file():
        return None
    text = saved.read_text()
    first, _, body = text.partition("\n")
    return (first.removeprefix("#").strip(), body) if first.startswith("# pcdrl") else ("", text)


def config_differences(saved_yaml: str, config: Any, may_differ: tuple[str, ...] = ()) -> list[str]:
    """Dotted names of the fields where a saved config differs from ``config``, less those allowed to."""
    try:
        saved = yaml.safe_load(saved_yaml)
    except yaml.YAMLError:
        return ["(config.yaml does not parse)"]
    now = yaml.safe_load(dump_yaml(config))
    saved = with_defaults(saved, type(config))
    old_leaves, new_leaves = _leaves(saved if isinstance(saved, dict) else {}), _leaves(now)
    free = set(may_differ)
    return sorted(
        name for name in set(old_leaves) | set(new_leaves)
        if old_leaves.get(name) != new_leaves.get(name)
        and name.rsplit(".", 1)[-1] not in ALWAYS_MAY_DIFFER
        and not any(name == f or name.startswith(f + ".") for f in free)
    )


def with_defaults(saved: Any, cls: type) -> Any:
    """A saved config with the fields a newer version added filled in at their defaults, so that a run made before
    a new field existed still matches a config that leaves the field at its default. Unchanged when the saved
    config no longer loads (a field was removed or renamed): then every difference shows."""
    try:
        return yaml.safe_load(dump_yaml(from_dict(cls, saved, source="the saved config")))
    except (ValueError, TypeError):
        return saved


def _leaves(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_leaves(value, name + "."))
        else:
            out[name] = value
    return out


def _ignorable(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")  # a temporary file a killed atomic write left


def is_free(path: Path) -> bool:
    """True when ``path`` does not exist or is an empty folder (or holds only a killed write's temporaries)."""
    return not path.exists() or (path.is_dir() and not any(not _ignorable(p.name) for p in path.iterdir()))


def check_out(out: str | Path, command: str, config: Any, may_differ: tuple[str, ...] = ()) -> None:
    """Refuse an --out that holds anything but this command's own run with this config.

    Same verb and same config (less ``may_differ`` and thread counts): fine, the command continues
    or resumes it. Another verb's run, another config, other inputs (the paths named on ``command``
    after the verb, when it names any), or files that are not a pcdrl run: RunFolderError, naming
    the path and the ways out. Nothing is read but config.yaml and the folder listing.
    """
    path, verb = Path(out), verb_of(command)
    if is_free(path):
        return
    if not path.is_dir():
        raise RunFolderError(f"--out {path} is a file, not a folder; choose another --out")
    header = read_header(path)
    if header is None:
        names = sorted(p.name for p in path.iterdir() if not _ignorable(p.name))
        if set(names) <= SWEEP_BOOKKEEPING:
            return
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise RunFolderError(f"--out {path} is not empty and holds no pcdrl run ({shown}); {_ways_out(path)}")
    saved_command, body = header
    if not saved_command:
        raise RunFolderError(f"--out {path} holds a config.yaml that pcdrl did not write; {_ways_out(path)}")
    saved_verb = verb_of(saved_command)
    if saved_verb != verb:
        raise RunFolderError(f"--out {path} holds a `{saved_verb}` run, not a `{verb}` one; {_ways_out(path)}")
    resume = ("continue it with its own config (--resume), " if verb in RESUMABLE_VERBS
              else "rerun with its own config to resume it, ")
    differ = config_differences(body, config, may_differ)
    if differ:
        raise RunFolderError(f"--out {path} holds a `{verb}` run made with a different config "
                             f"(fields: {', '.join(differ)}); {_ways_out(path, resume)}")
    if command.strip() != verb and _inputs_of(saved_command) != _inputs_of(command):
        raise RunFolderError(f"--out {path} holds a `{verb}` run of other inputs "
                             f"({' '.join(saved_command.split()[len(verb.split()):])}); {_ways_out(path, resume)}")


def check_saved_config(out: Path, name: str, config: Any, may_differ: tuple[str, ...], what: str) -> None:
    """For folders that keep their config as ``name`` (a sweep's sweep.yaml): reuse only by the same config."""
    if is_free(out):
        return
    saved = out / name
    if not saved.is_file():
        raise RunFolderError(f"--out {out} is not empty and holds no `{what}` folder (no {name}); {_ways_out(out)}")
    differ = config_differences(saved.read_text(), config, may_differ)
    if differ:
        raise RunFolderError(f"--out {out} holds a `{what}` folder made with a different config (fields: "
                             f"{', '.join(differ)}); {_ways_out(out, 'rerun with its own config to resume it, ')}")


def claim_out(out: Path, force: bool, resume: bool, inputs: list) -> Path | None:
    """--force: move a non-empty ``out`` aside (never delete it) and return where it went.

    Refused when ``out`` holds one of the command's ``inputs`` (eval's run, label's checkpoint): moving it
    would pull the input from under the command.
    """
    if not force:
        return None
    if resume:
        raise RunFolderError("--force and --resume contradict each other: --resume continues the run in --out, "
                             "--force moves it aside to start afresh; pass one of them")
    if is_free(out):
        return None
    for path in map(Path, filter(None, inputs)):
        if path.resolve() == out.resolve() or out.resolve() in path.resolve().parents:
            raise RunFolderError(f"--force would move {out} aside, and with it {path}, which this command reads; "
                                 "choose another --out")
    return move_aside(out)


def _ways_out(path: Path, resume: str = "") -> str:
    suffix = aside_name(path).name.removeprefix(path.name)  # short: sweeps keep the last 300 characters of an error
    return f"choose a new --out, {resume}or pass --force to move it aside (adds {suffix} to its name; nothing is deleted)"


def _plain(value: Any) -> Any:
    """JSON-safe scalars: tensors and numpy numbers become floats, NaN becomes null."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
