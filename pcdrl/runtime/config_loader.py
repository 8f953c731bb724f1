"""Typed dataclass configs from YAML, with dotted CLI overrides.

Every config in pcd-rl is a tree of dataclasses. Values live in YAML files under
``configs/``; a command line may override any leaf with ``section.field=value``.
Mistakes fail at load, before any model is touched, and the error names the field:

    ConfigError: pcd.kk: unknown key (in configs/pcd/quickstart.yaml). Known keys under 'pcd': d_dict, k, ...

The loader checks keys and types (and refuses NaN, infinity and duplicate YAML keys); each dataclass's
``__post_init__`` checks its own ranges and names with the helpers at the end of this file, so that a
config built in Python is held to the same rules as one read from YAML.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or contradicts another one."""


SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
"""The YAML configs that ship inside the pcdrl package (pcdrl/configs/)."""


def resolve_config_path(path: str | Path) -> Path:
    """A config path as the user wrote it, or, when no such file exists, the shipped config it names.

    `configs/rl/grpo_concepts.yaml` names pcdrl/configs/rl/grpo_concepts.yaml from any directory, so the
    commands in the docs work from a wheel install too; a file of that path in the current folder wins."""
    path = Path(path)
    try:
        if path.is_file() or path.is_absolute() or not path.parts or path.parts[0] != "configs":
            return path
    except (OSError, ValueError):  # a name the OS cannot look up (too long, NUL byte)
        return path
    shipped = SHIPPED_CONFIGS.joinpath(*path.parts[1:])
    return shipped if shipped.is_file() else path


def shipped_config_names() -> list[str]:
    """Every shipped config, as `configs/...` paths that resolve_config_path accepts."""
    return sorted("configs/" + p.relative_to(SHIPPED_CONFIGS).as_posix() for p in SHIPPED_CONFIGS.rglob("*.yaml"))


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build a ``cls`` from a YAML file, then apply ``key.sub=value`` overrides."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = resolve_config_path(path)
        try:
            found = path.is_file()
        except (OSError, ValueError):  # a name the OS cannot look up (too long, NUL byte)
            found = False
        if not found:
            raise ConfigError(f"config file {path} does not exist; give a YAML path, or a shipped config: "
                              f"{', '.join(shipped_config_names())}")
        source = str(path)
        loaded = read_yaml_file(path)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(loaded).__name__}")
        raw = loaded
    for item in overrides or []:
        _apply_override(raw, item)
    if overrides:
        source = "the overrides" if path is None else f"{source} or the overrides"
    return from_dict(cls, raw, source=source)


def read_yaml_file(path: str | Path) -> Any:
    """A YAML file's data; an unreadable, undecodable or malformed file is a ConfigError that names it."""
    return parse_yaml(_read_text(Path(path)), str(path))


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); "
                          "a config is a UTF-8 YAML file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error, not "the last one wins"."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` keys may be overridden by the explicit keys beside them
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
            except TypeError:
                continue  # an unhashable key: the base class raises its own, clearer error
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(key, seen[key], line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int):
        super().__init__(f"duplicate key {key!r} (line {first}, again on line {again}); each key may appear once")
        self.key, self.first, self.again = key, first, again


def parse_yaml(text: str, source: str, lines: bool = True) -> Any:
    """YAML text to plain data; any syntax error or duplicate key is a ConfigError that names ``source`` (and, with
    ``lines``, the line and column, as file:line:column)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as err:
        raise ConfigError(f"{source}: {err}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        what = "; ".join(str(x) for x in (err.context, err.problem) if x)
        if mark and lines:
            raise ConfigError(f"{source}:{mark.line + 1}:{mark.column + 1}: not valid YAML ({what})") from None
        where = f" at column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{where} ({what})") from None
    except yaml.reader.ReaderError as err:  # its own text names "<unicode string>", not the file
        char = f"#x{err.character:04x}" if isinstance(err.character, int) else repr(err.character)
        raise ConfigError(f"{source}: not valid YAML (unacceptable character {char} at offset {err.position}: "
                          f"{err.reason})") from None
    except yaml.YAMLError as err:
        what = " ".join(str(err).replace('in "<unicode string>", ', "").split())
        raise ConfigError(f"{source}: not valid YAML ({what})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a config") from None


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
        if child is None:  # `section:` with nothing under it in the YAML
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part} is a value, not a section")
        node = child
    # YAML parses "8" as int, "1e-4" as float, "true" as bool, "[1,2]" as a list.
    value = parse_yaml(text, f"override {item!r}", lines=False) if text.strip() else ""
    node[parts[-1]] = value


def from_dict(cls: type[T], raw: Any, source: str = "dict", prefix: str = "") -> T:
    """Recursively build dataclass ``cls`` from plain data, checking keys and types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {_show(raw)} (in {source})")
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
        raise ConfigError(_under(prefix, str(err), set(fields))) from None


def _under(prefix: str, message: str, fields: set[str]) -> str:
    """A ``__post_init__`` message moved under the config's place in the tree.

    Messages name fields relative to their own dataclass, sometimes behind its usual section name
    ("backend.kind: ..."); inside ``judge.backend`` that must read "judge.backend.kind: ...", not
    "judge.backend.backend.kind: ...".
    """
    rest = message[len(prefix):len(prefix) + 1]
    if not prefix or (message.startswith(prefix) and not (rest.isalnum() or rest == "_")):
        return message
    head = re.match(r"[\w.\[\]]+", message)
    parts = head.group(0).split(".") if head else []
    base = [p.split("[")[0] for p in parts]
    if base and base[0] in fields:
        return f"{prefix}.{message}"
    if len(base) > 1 and base[1] in fields:
        return f"{prefix}.{message[len(parts[0]) + 1:]}"
    return f"{prefix}: {message}"


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
        raise ConfigError(errors[0] if len(errors) == 1 else f"{name}: {_show(value)} matches none of {tp} (in {source})")
    if origin is Literal:
        choices = get_args(tp)
        if not _hashable(value) or value not in choices:
            raise ConfigError(f"{name}: {_show(value)} is not one of {list(choices)} (in {source}){did_you_mean(value, choices)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {_show(value)} (in {source})")
        (item_tp, *_) = get_args(tp) or (Any,)
        items = [_convert(item_tp, v, f"{name}[{i}]", source) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {_show(value)} (in {source})")
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {_convert(key_tp, k, f"{name} key {k!r}", source): _convert(val_tp, v, f"{name}.{k}", source)
                for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {_show(value)} (in {source})")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {_show(value)} (in {source})")
        return value
    if tp is float:
        number = value
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads "1e-4" as a string; people write it that way all the time.
            try:
                number = float(value)
            except ValueError:
                pass
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {_show(value)} (in {source})")
        try:
            number = float(number)
        except OverflowError:  # an integer beyond float range
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{name}: expected a finite number, got {_show(value)} (in {source})")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {_show(value)} (in {source})")
        return value
    raise ConfigError(f"{name}: unsupported config type {tp}")  # a bug in a config class, not in the YAML


_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlevel = 80, 80, 3


def _show(value: Any) -> str:
    """repr for error messages, bounded: a YAML alias can make a value's full repr exponentially long."""
    return _SHORT.repr(value)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-data view of a config, for YAML/JSON output."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# Checks for `__post_init__`. Each raises "<field>: <what is allowed>, got <value>": the field relative to its own
# dataclass (from_dict puts the path in front). They are written as "what is allowed", so NaN, which fails every
# comparison, fails them all.

def require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: must be {allowed}, got {_show(value)}")


def at_least(name: str, value: float, low: float, why: str = "") -> None:
    require(value >= low, name, value, f">= {low}{why}")


def positive(name: str, value: float, why: str = "") -> None:
    require(value > 0, name, value, f"> 0{why}")


def in_range(name: str, value: float, low: float, high: float, closed: str = "[]", why: str = "") -> None:
    """``closed`` says which ends are included: "[]", "[)", "(]" or "()"."""
    above = value >= low if closed[0] == "[" else value > low
    below = value <= high if closed[1] == "]" else value < high
    require(above and below, name, value, f"in {closed[0]}{low}, {high}{closed[1]}{why}")


def seed_value(name: str, value: int) -> None:
    """Seeds feed torch, numpy and Python's random; all take [0, 2**32)."""
    require(0 <= value < 2**32, name, value, "in [0, 2**32)")


def one_of(name: str, value: Any, choices: Iterable[str]) -> None:
    choices = list(choices)
    if not _hashable(value) or value not in choices:
        raise ConfigError(f"{name}: {_show(value)} is not one of {', '.join(map(str, choices))}{did_you_mean(value, choices)}")


def all_of(name: str, values: Iterable[Any], choices: Iterable[str], distinct: bool = True) -> None:
    """Every entry of a list is a known name (and, with ``distinct``, none repeats)."""
    values, choices = list(values), list(choices)
    for i, value in enumerate(values):
        if not _hashable(value) or value not in choices:
            raise ConfigError(f"{name}[{i}]: {_show(value)} is not one of {', '.join(map(str, choices))}"
                              f"{did_you_mean(value, choices)}")
    if distinct and len(set(values)) != len(values):
        raise ConfigError(f"{name}: {values} names an entry twice; give each once")


def finite_numbers(cfg: Any) -> None:
    """Refuse NaN and infinity in every float field (lists and mapping values included)."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        entries = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) \
            else [(None, value)]
        for key, entry in entries:
            if isinstance(entry, float) and not math.isfinite(entry):
                where = f.name if key is None else f"{f.name}.{key}" if isinstance(value, dict) else f"{f.name}[{key}]"
                raise ConfigError(f"{where}: must be a finite number, got {entry!r}")


def did_you_mean(value: Any, choices: Iterable[Any]) -> str:
    """The suffix ". Did you mean 'x'?" for the closest choice, or "" when none is close."""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(value), names, n=1) if _hashable(value) else []
    return f". Did you mean '{close[0]}'?" if close else ""
