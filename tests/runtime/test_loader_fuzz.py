"""Property and fuzz tests of the config loader (hypothesis).

- Any override string, and any YAML document, either loads or raises ConfigError: never a traceback of another type.
- A config loaded, dumped and loaded again is the same config.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcdrl.behaviors.config import DataBuildConfig
from pcdrl.runtime.config_loader import ConfigError, dump_yaml, load_config
from pcdrl.pcd.config import PretrainRunConfig
from pcdrl.pcd.labels_config import LabelRunConfig
from pcdrl.evaluation.eval_config import EvalConfig
from pcdrl.evaluation.judge_eval_config import JudgeEvalConfig
from pcdrl.quickstart_config import QuickstartConfig
from pcdrl.rl.train_config import RLTrainConfig

REPO = Path(__file__).resolve().parents[2]
CLASSES = [RLTrainConfig, PretrainRunConfig, LabelRunConfig, DataBuildConfig, EvalConfig, JudgeEvalConfig,
           QuickstartConfig]
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    # Random model names must not reach for the network; the offline path is the one under test.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _leaf_paths(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of a config tree (the keys a fuzzed override is most likely to reach)."""
    paths = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        name = f"{prefix}{f.name}"
        paths.append(name)
        if dataclasses.is_dataclass(tp):
            paths += _leaf_paths(tp, name + ".")
    return paths


KEYS = sorted({p for cls in CLASSES for p in _leaf_paths(cls)})
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
                   TEXT, st.sampled_from(["", ".nan", ".inf", "-.inf", "1e-4", "1e400", "[", "{a: 1, a: 2}", "~",
                                          "!!python/object:os.system {}", "&a [*a]", "2020-01-01", "\t", "\x00"]))
YAML_VALUE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.one_of(st.sampled_from(KEYS), TEXT), inner,
                                                                         max_size=4)), max_leaves=12)


def _loads_or_config_error(cls, path=None, overrides=()):
    try:
        return load_config(cls, path, list(overrides))
    except ConfigError:
        return None


def _override_value(value) -> str:
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


@FUZZ
@given(cls=st.sampled_from(CLASSES), key=st.one_of(st.sampled_from(KEYS), TEXT), value=YAML_VALUE,
       sep=st.sampled_from(["=", "=", " = ", ""]))
def test_any_override_loads_or_raises_config_error(cls, key, value, sep):
    _loads_or_config_error(cls, None, [f"{key}{sep}{_override_value(value)}"])


@FUZZ
@given(cls=st.sampled_from(CLASSES), text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_any_yaml_text_loads_or_raises_config_error(cls, text, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_text(text, encoding="utf-8")
    _loads_or_config_error(cls, path)


@FUZZ
@given(cls=st.sampled_from(CLASSES), doc=st.dictionaries(st.sampled_from(KEYS), YAML_VALUE, max_size=6))
def test_any_yaml_mapping_loads_or_raises_config_error(cls, doc, tmp_path_factory):
    """Structured documents reach deeper than random text: real keys, wrong shapes and values."""
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    _loads_or_config_error(cls, path)


@FUZZ
@given(data=st.binary(max_size=120))
def test_any_bytes_load_or_raise_config_error(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_bytes(data)
    _loads_or_config_error(PretrainRunConfig, path)


# Valid values per key: a config built from any mix of them must survive dump -> load unchanged.
FREE_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(str.strip)
VALID = {
    "lr": st.floats(1e-8, 10.0), "steps": st.integers(1, 10**6), "items_per_step": st.integers(1, 512),
    "seed": st.integers(0, 2**32 - 1), "threads": st.integers(0, 64), "max_train_items": st.integers(0, 10**6),
    "kl.beta": st.floats(0.0, 10.0), "kl.estimator": st.sampled_from(["k1", "k3"]),
    "grpo.clip_low": st.floats(0.0, 0.99), "grpo.clip_high": st.floats(0.0, 5.0), "grpo.group_size": st.integers(2, 64),
    "policy.k": st.integers(1, 64), "policy.temperature": st.floats(1e-3, 10.0),
    "rewards": st.dictionaries(st.sampled_from(["judge_logprob", "judge_correct", "brier", "sparsity"]),
                               st.floats(0.01, 5.0), min_size=1, max_size=3),
    "families": st.lists(st.sampled_from(["continuation", "attributes", "audit"]), min_size=1, max_size=3,
                         unique=True),
    "judge.name": FREE_TEXT.filter(lambda s: s != "gemma"), "judge.temperature": st.floats(1e-3, 100.0),
    "judge.backend.batch_size": st.integers(1, 256), "judge.backend.timeout_s": st.floats(0.01, 1e4),
    "judge.backend.device": st.sampled_from(["cpu", "cuda", "cuda:1", "mps"]),
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.fixed_dictionaries({}, optional=VALID))
def test_dump_then_load_gives_the_same_config(values, tmp_path_factory):
    # Dumped as YAML, strings too: the override "judge.name=0" means the integer 0, as on the command line.
    overrides = [f"{key}={yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix('...').strip()}"
                 for key, value in values.items()]
    cfg = load_config(RLTrainConfig, None, overrides)
    for key, value in values.items():  # the overrides landed where they were aimed
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value, key
    path = tmp_path_factory.mktemp("roundtrip") / "config.yaml"
    path.write_text(dump_yaml(cfg), encoding="utf-8")
    assert load_config(RLTrainConfig, path) == cfg


@pytest.mark.parametrize("cls, path", [
    (QuickstartConfig, "configs/quickstart.yaml"), (PretrainRunConfig, "configs/pcd/quickstart.yaml"),
    (LabelRunConfig, "configs/pcd/label_quickstart.yaml"), (DataBuildConfig, "configs/data/quickstart.yaml"),
    (RLTrainConfig, "configs/rl/ppo_concepts.yaml"), (EvalConfig, "configs/eval/eval.yaml"),
    (JudgeEvalConfig, "configs/eval/judge_eval.yaml"),
])
def test_shipped_configs_round_trip(cls, path, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = load_config(cls, path)
    (tmp_path / "again.yaml").write_text(dump_yaml(cfg))
    assert load_config(cls, tmp_path / "again.yaml") == cfg
