"""Typed dataclass configs from YAML, with dotted CLI overrides.

Every config in pcd-rl is a tree of dataclasses. Values live in YAML files under
``configs/``; a command line may override any leaf with ``section.field=value``.
Mistakes fail at load, before any model is touched, and the error names the field:

    ConfigError: pcd.kk: unknown key (in configs/pcd/quickstart.yaml). Known keys under 'pcd': d_dict, k, ...
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or contradicts another one."""


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build a ``cls`` from a YAML file, then apply ``key.sub=value`` overrides."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (configs ship under configs/, e.g. configs/pcd/quickstart.yaml)")
        source = str(path)
        loaded = yaml.safe_load(path.read_text())
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(loaded).__name__}")
        raw = loaded
    for item in overrides or []:
        _apply_override(raw, item)
    return from_dict(cls, raw, source=source)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.field=value (e.g. pcd.k=8)")
    key, _, text = item.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {item!r} has an empty key part")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part} is a value, not a section")
        node = child
    # YAML parses "8" as int, "1e-4" as float, "true" as bool, "[1,2]" as a list.
    value = yaml.safe_load(text) if text.strip() else ""
    node[parts[-1]] = value


def from_dict(cls: type[T], raw: Any, source: str = "dict", prefix: str = "") -> T:
    """Recursively build dataclass ``cls`` from plain data, checking keys and types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {raw!r} (in {source})")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        key = unknown[0]
        where = f"'{prefix}'" if prefix else "the top level"
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"{_join(prefix, key)}: unknown key (in {source}).{hint} Known keys under {where}: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in raw.items():
        kwargs[name] = _convert(hints[name], value, _join(prefix, name), source)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        # __post_init__ checks name the field relative to their own dataclass; add the path.
        if prefix and not str(err).startswith(prefix):
            raise ConfigError(f"{prefix}.{err}") from None
        raise


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _convert(tp: Any, value: Any, name: str, source: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source, name)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, name, source)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{name}: {value!r} matches none of {tp} (in {source})")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{name}: {value!r} is not one of {list(choices)} (in {source})")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r} (in {source})")
        (item_tp, *_) = get_args(tp) or (Any,)
        items = [_convert(item_tp, v, f"{name}[{i}]", source) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {value!r} (in {source})")
        _, val_tp = get_args(tp) or (Any, Any)
        return {k: _convert(val_tp, v, f"{name}.{k}", source) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r} (in {source})")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r} (in {source})")
        return value
    if tp is float:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads "1e-4" as a string; people write it that way all the time.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r} (in {source})")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r} (in {source})")
        return value
    raise ConfigError(f"{name}: unsupported config type {tp}")  # a bug in a config class, not in the YAML


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-data view of a config, for YAML/JSON output."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
