"""Atomic, durable file and folder writes: a reader sees the old version or the new one, never half of one.

"Durable" means fsynced: a rename is only as good as the data it points at, so file contents are
flushed to disk before the rename that publishes them, and the parent folder after it (the rename
itself lives in the folder's entries). Without that, a power cut can leave a renamed file empty.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Iterator


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (creations, renames) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the data itself was already flushed
    finally:
        os.close(fd)


def fsync_tree(path: str | Path) -> None:
    """Flush every file under ``path``, then every folder, deepest first."""
    path = Path(path)
    folders = [path]
    for root, dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        folders.extend(Path(root) / d for d in dirs)
    for folder in reversed(folders):
        fsync_dir(folder)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | Path, hook: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Yield a temporary folder; on success it is fsynced and replaces ``path`` in one rename.

    If the body raises (or the process dies), ``path`` keeps its previous content and the
    temporary folder is removed (or left as an ignorable ``.name.*.tmp`` sibling after a kill).
    ``hook(stage)`` is called at each step of the swap (``before_rename``, ``after_first_rename``,
    ``after_second_rename``) so that tests can kill the process exactly there.
    """
    path = Path(path)
    hook = hook or (lambda stage: None)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        fsync_tree(tmp)
        hook("before_rename")
        if path.exists():
            # Two renames keep a window where neither exists, but never one where a half-written folder
            # does; in that window the previous version is complete under `.name.old` (readers may use it).
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            hook("after_first_rename")
            os.replace(tmp, path)
            fsync_dir(path.parent)
            hook("after_second_rename")
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
            fsync_dir(path.parent)
            hook("after_second_rename")  # the same state: the new folder is in place
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def aside_name(path: str | Path) -> Path:
    """The first unused ``<path>.old-N`` next to ``path``."""
    path = Path(path)
    n = 1
    while (aside := path.with_name(f"{path.name}.old-{n}")).exists():
        n += 1
    return aside


def move_aside(path: str | Path) -> Path:
    """Rename ``path`` to the first unused ``<path>.old-N`` next to it and return the new name.

    This is how a command makes room for a fresh run without deleting anything a user may want back.
    """
    path = Path(path)
    aside = aside_name(path)
    os.replace(path, aside)
    fsync_dir(path.parent)
    return aside
