"""Every config value is checked when the config is made: ranges, NaN and infinity, names against their registries
(with the nearest one suggested), duplicate YAML keys, and YAML errors that name the file. Configs only: no model
loads. The cases here are the rows of docs/robustness.md ("Config values checked at load")."""
from __future__ import annotations

import dataclasses
import math
import time
import typing
from pathlib import Path

import pytest

from pcdrl.behaviors.config import DataBuildConfig
from pcdrl.runtime.config_loader import ConfigError, load_config, parse_yaml
from pcdrl.models.registry import ModelNotAvailableError
from pcdrl.pcd.config import CorpusConfig, PretrainRunConfig
from pcdrl.pcd.labels_config import LabelRunConfig
from pcdrl.evaluation.eval_config import EvalConfig
from pcdrl.evaluation.judge_eval_config import JudgeEvalConfig
from pcdrl.quickstart_config import QuickstartConfig
from pcdrl.sweeps.config import SweepConfig
from pcdrl.rl.train_config import RLTrainConfig

REPO = Path(__file__).resolve().parents[2]
TOP_LEVEL = [RLTrainConfig, PretrainRunConfig, LabelRunConfig, DataBuildConfig, EvalConfig, JudgeEvalConfig,
             QuickstartConfig, SweepConfig]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """As on the CI machines: no hub. Model-name checks then refuse names that are not here."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# (config class, overrides, the message it must give: dotted field, the bad value, what is allowed)
BAD = [
    (RLTrainConfig, ["lr=-1"], r"^lr: must be > 0, got -1\.0$"),
    (RLTrainConfig, ["lr=.nan"], r"^lr: expected a finite number, got nan"),
    (RLTrainConfig, ["kl.beta=-1"], r"^kl\.beta: must be >= 0\.0 \(0 turns the KL penalty off.*got -1\.0$"),
    (RLTrainConfig, ["grpo.clip_low=5"], r"^grpo\.clip_low: must be in \[0\.0, 1\.0\) .*got 5\.0$"),
    (RLTrainConfig, ["ppo.clip_high=-0.1"], r"^ppo\.clip_high: must be >= 0\.0 .*got -0\.1$"),
    (RLTrainConfig, ["grpo.updates_per_batch=0"], r"^grpo\.updates_per_batch: must be >= 1, got 0$"),
    (RLTrainConfig, ["ppo.gamma=1.5"], r"^ppo\.gamma: must be in \[0\.0, 1\.0\], got 1\.5$"),
    (RLTrainConfig, ["ppo.value_clip=0"], r"^ppo\.value_clip: must be > 0 .*got 0\.0$"),
    (RLTrainConfig, ["policy.k=-1"], r"^policy\.k: must be >= 1 .*got -1$"),
    (RLTrainConfig, ["policy.temperature=-1"], r"^policy\.temperature: must be > 0 .*got -1\.0$"),
    (RLTrainConfig, ["rewards={judge_logprob: -1}"], r"^rewards\.judge_logprob: must be >= 0\.0 .*got -1\.0$"),
    (RLTrainConfig, ["rewards={judge_logprob: .nan}"], r"^rewards\.judge_logprob: expected a finite number, got nan"),
    (RLTrainConfig, ["rewards={judge_logprob: 1, .m:f: 1}"], r"^rewards: unknown reward '\.m:f'; built-in rewards: "),
    (RLTrainConfig, ["rewards={judge_logprb: 1}"], r"unknown reward 'judge_logprb'.*Did you mean 'judge_logprob'\?$"),
    (RLTrainConfig, ["max_train_items=-3"], r"^max_train_items: must be >= 0 \(0 = all\), got -3$"),
    (RLTrainConfig, ["threads=-2"], r"^threads: must be >= 0 \(0 = torch's default\), got -2$"),
    (RLTrainConfig, ["seed=-1"], r"^seed: must be in \[0, 2\*\*32\), got -1$"),
    (RLTrainConfig, ["families=[continuaton]"], r"^families\[0\]: 'continuaton' is not one of continuation, "
                                                 r"attributes, audit\. Did you mean 'continuation'\?$"),
    (RLTrainConfig, ["families=[]"], r"^families: empty"),
    (RLTrainConfig, ["families=[audit, audit]"], r"^families: \['audit', 'audit'\] names an entry twice"),
    (RLTrainConfig, ["heldout_judges=[{name: smollm2}]"], r"^heldout_judges: judge names must differ"),
    (RLTrainConfig, ["judge.backend.kind=hff"], r"^judge\.backend\.kind: 'hff' is not one of hf, vllm, http\. "
                                                r"Did you mean 'hf'\?$"),
    (RLTrainConfig, ["judge.backend.device=gpu"], r"^judge\.backend\.device: 'gpu' is not a torch device"),
    (RLTrainConfig, ["judge.backend.timeout_s=0"], r"^judge\.backend\.timeout_s: must be > 0, got 0\.0$"),
    (RLTrainConfig, ["judge.backend.kind=http"], r"^judge\.backend\.base_url: kind http needs the server root"),
    (RLTrainConfig, ["judge.template=defualt"], r"^judge\.template: 'defualt' is not one of default, terse\. "
                                                r"Did you mean 'default'\?$"),
    (RLTrainConfig, ["judge.templates_file=nope.yaml"], r"^judge\.templates_file: nope\.yaml does not exist"),
    (RLTrainConfig, ["judge.max_labels=0"], r"^judge\.max_labels: must be >= 1, got 0$"),
    (RLTrainConfig, ["heldout_judges=[{name: g, backend: {batch_size: 0}}]"],
     r"^heldout_judges\[0\]\.backend\.batch_size: must be at least 1, got 0$"),
    (RLTrainConfig, ["judge.backend.model=smollm2-135m-instrct"],
     r"^judge\.backend\.model: model 'smollm2-135m-instrct' is not an offline default.*HF_HUB_OFFLINE=1.*"
     r"Did you mean 'smollm2-135m-instruct'\?"),
    (DataBuildConfig, ["continuation.n_items=-5"], r"^continuation\.n_items: must be >= 1 .*got -5$"),
    (DataBuildConfig, ["generation.batch_size=0"], r"^generation\.batch_size: must be at least 1, got 0$"),
    (DataBuildConfig, ["continuation.corpus.sources=[kvj]"],
     r"^continuation\.corpus\.sources: unknown source 'kvj'; built-in ones are \['kjv', 'python-docs'\].*"
     r"Did you mean 'kjv'\?$"),
    (DataBuildConfig, ["attributes.checkers=[refusl]"], r"^attributes\.checkers: unknown checker\(s\) \['refusl'\]; "
                                                        r"known: .*Did you mean 'refusal'\?$"),
    (DataBuildConfig, ["attributes.checkers=[refusal, refusal]"], r"^attributes\.checkers: .* names an entry twice"),
    (DataBuildConfig, ["layer=-1"], r"^layer: must be >= 0, got -1$"),
    (DataBuildConfig, ["continuation.enabled=false", "attributes.enabled=false"], r"nothing to build"),
    (DataBuildConfig, ["subject_model=gemma3-270"], r"^subject_model: model 'gemma3-270' .*Did you mean 'gemma3-270m'"),
    (PretrainRunConfig, ["corpus.sources=[wiki]"], r"^corpus\.sources: unknown source 'wiki'; built-in ones are "),
    (PretrainRunConfig, ["train.lr=.nan"], r"^train\.lr: expected a finite number, got nan"),
    (PretrainRunConfig, ["train.lr=.inf"], r"^train\.lr: expected a finite number, got inf"),
    (PretrainRunConfig, ["train.threads=-2"], r"^train\.threads: must be >= 0 .*got -2$"),
    (PretrainRunConfig, ["train.min_lr_ratio=2"], r"^train\.min_lr_ratio: must be in \[0\.0, 1\.0\] .*got 2\.0$"),
    (PretrainRunConfig, ["train.grad_clip=-1"], r"^train\.grad_clip: must be >= 0\.0 .*got -1\.0$"),
    (PretrainRunConfig, ["pcd.lora_dropout=1"], r"^pcd\.lora_dropout: must be in \[0\.0, 1\.0\), got 1\.0$"),
    (PretrainRunConfig, ["train.baselines=[no_concepts, no_concepts]"], r"^train\.baselines: .* names a control twice"),
    (LabelRunConfig, ["label.explainer_model=smolm2-135m-instruct"],
     r"^label\.explainer_model: model 'smolm2-135m-instruct' .*Did you mean 'smollm2-135m-instruct'\?"),
    (LabelRunConfig, ["label.threads=-2"], r"^label\.threads: must be >= 0 .*got -2$"),
    (EvalConfig, ["split=tset"], r"^split: 'tset' is not one of train, test\. Did you mean 'test'\?$"),
    (EvalConfig, ["threads=-2"], r"^threads: must be >= 0 .*got -2$"),
    (EvalConfig, ["judges=[{name: a}]", "control_judges=[b]"], r"^control_judges\[0\]: 'b' is not one of a$"),
    (EvalConfig, ["fidelity.seed=-4"], r"^fidelity\.seed: must be in \[0, 2\*\*32\), got -4$"),
    (JudgeEvalConfig, ["bootstrap_resamples=10"], r"^bootstrap_resamples: must be >= 100 .*got 10$"),
    (JudgeEvalConfig, ["max_items_per_family=-1"], r"^max_items_per_family: must be >= 0 .*got -1$"),
    (QuickstartConfig, ["threads=-2"], r"^threads: must be >= 0 .*got -2$"),
    (QuickstartConfig, ["train.config="], r"^train\.config: empty"),
]


@pytest.mark.parametrize("cls, overrides, message", BAD, ids=[" ".join(o) for _, o, _ in BAD])
def test_a_bad_value_fails_at_load_naming_field_value_and_choices(cls, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(cls, None, overrides)


def test_sweep_values_fail_at_load():
    base = str(REPO / "pcdrl/configs/rl/grpo_concepts.yaml")
    with pytest.raises(ConfigError, match=r"^seeds\[1\]: must be in \[0, 2\*\*32\), got -1$"):
        load_config(SweepConfig, None, [f"base={base}", "seeds=[0, -1]"])
    with pytest.raises(ConfigError, match=r"weights\.grid\.judge_logprob\[0\]: expected a finite number, got nan"):
        load_config(SweepConfig, None, [f"base={base}", "weights.grid={judge_logprob: [.nan]}"])
    with pytest.raises(ConfigError, match=r"^launcher: 'rey' is not one of local, ray\. Did you mean 'ray'\?$"):
        load_config(SweepConfig, None, [f"base={base}", "launcher=rey"])


def _config_classes() -> list[type]:
    """Every dataclass in the config trees, the nested ones included."""
    seen: list[type] = []
    todo = list(TOP_LEVEL)
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        for tp in typing.get_type_hints(cls).values():
            todo += [t for t in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(t)]
    return seen


def _float_fields() -> list[tuple[type, str]]:
    return [(cls, f.name) for cls in _config_classes() for f in dataclasses.fields(cls)
            if typing.get_type_hints(cls)[f.name] in (float, typing.Optional[float])]


@pytest.mark.parametrize("cls, name", _float_fields(), ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_in_every_float_field_even_in_python(cls, name, bad):
    """The loader refuses them in YAML; __post_init__ must too, for configs made in Python."""
    kwargs = {"base": str(REPO / "pcdrl/configs/rl/grpo_concepts.yaml")} if cls is SweepConfig else {}
    with pytest.raises(ConfigError, match=rf"^(\w+\.)?{name}: must be"):
        cls(**kwargs, **{name: bad})


def test_every_float_field_is_covered():
    assert len(_float_fields()) >= 29, "the walk over the config trees lost classes"


def test_nested_errors_name_the_path_once():
    """BackendConfig says "backend.kind"; inside judge.backend that must not become judge.backend.backend.kind."""
    with pytest.raises(ConfigError) as err:
        load_config(RLTrainConfig, None, ["heldout_judges=[{name: g, backend: {kind: onnx}}]"])
    assert str(err.value).startswith("heldout_judges[0].backend.kind: 'onnx'")
    with pytest.raises(ConfigError) as err:
        load_config(EvalConfig, None, ["judges=[{name: a, temperature: 0}]"])
    assert str(err.value).startswith("judges[0].temperature: must be positive")


def test_duplicate_yaml_keys_name_the_file_and_the_key(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("steps: 3\nlr: 0.01\nsteps: 4\n")
    with pytest.raises(ConfigError, match=rf"^{path}: duplicate key 'steps' \(line 1, again on line 3\)"):
        load_config(RLTrainConfig, path)
    path.write_text("grpo:\n  group_size: 4\n  group_size: 8\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'group_size' \(line 2, again on line 3\)"):
        load_config(RLTrainConfig, path)
    with pytest.raises(ConfigError, match=r"^override 'rewards=\{a: 1, a: 2\}': duplicate key 'a'"):
        load_config(RLTrainConfig, None, ["rewards={a: 1, a: 2}"])
    # A merge key is not a duplicate: explicit keys beside `<<: *base` override it, as YAML says.
    assert parse_yaml("a: &x {b: 1, c: 2}\nd: {<<: *x, b: 3}\n", "f") == {"a": {"b": 1, "c": 2}, "d": {"b": 3, "c": 2}}


def test_malformed_yaml_names_the_file_line_and_column(tmp_path):
    path = tmp_path / "pretrain.yaml"
    path.write_text("pcd:\n  k: [8, 16\ntrain:\n  steps: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(PretrainRunConfig, path)
    assert str(err.value).startswith(f"{path}:3:") and "not valid YAML" in str(err.value)
    assert "<unicode string>" not in str(err.value)
    path.write_text("pcd:\n\tk: 8\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2:1: not valid YAML .*'\\t'"):
        load_config(PretrainRunConfig, path)
    path.write_text("pcd: {k: \x00}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: not valid YAML \(unacceptable character #x0000") as err:
        load_config(PretrainRunConfig, path)
    assert "<unicode string>" not in str(err.value)


def test_undecodable_and_unreadable_files_are_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("question: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^{path}: not UTF-8 text \(byte 0xe9 at offset 13\)"):
        load_config(DataBuildConfig, path)
    with pytest.raises(ConfigError, match=r"config file .* does not exist"):
        load_config(PretrainRunConfig, tmp_path / ("x" * 300 + ".yaml"))  # too long for the OS to look up


def test_a_malformed_override_value_names_the_override():
    with pytest.raises(ConfigError, match=r"^override 'pcd\.lora_targets=\[q_proj,': not valid YAML"):
        load_config(PretrainRunConfig, None, ["pcd.lora_targets=[q_proj,"])


def test_an_unknown_builtin_corpus_fails_when_the_config_is_made():
    """Before, CorpusConfig(sources=[wiki]) loaded, and only reading the text failed (pcdrl/pcd/corpus.py)."""
    with pytest.raises(ConfigError, match=r"^sources: unknown source 'wiki'; built-in ones are \['kjv', 'python-docs'\]"):
        CorpusConfig(sources=["wiki"])
    assert CorpusConfig(sources=["wiki"], path="my.txt").path == "my.txt"  # sources are ignored when path is set


def test_builtin_corpus_check_reads_the_corpus_registry():
    from pcdrl.pcd.corpus import BUILTIN_SOURCES

    assert CorpusConfig(sources=sorted(BUILTIN_SOURCES)).sources == sorted(BUILTIN_SOURCES)


def test_an_audit_checker_given_as_a_list_is_an_audit_error_not_a_traceback():
    from pcdrl.behaviors.audit import AuditFileError, parse_line

    with pytest.raises(AuditFileError, match=r"a\.jsonl:1: field 'checker'"):
        parse_line({"prompt": "p", "checker": ["refusal"]}, "a.jsonl", 1)


@pytest.mark.parametrize("cls, path", [
    (QuickstartConfig, "configs/quickstart.yaml"), (PretrainRunConfig, "configs/pcd/quickstart.yaml"),
    (PretrainRunConfig, "configs/pcd/smollm2.yaml"), (LabelRunConfig, "configs/pcd/label_quickstart.yaml"),
    (DataBuildConfig, "configs/data/quickstart.yaml"), (RLTrainConfig, "configs/rl/grpo_concepts.yaml"),
    (RLTrainConfig, "configs/rl/ppo_concepts.yaml"), (EvalConfig, "configs/eval/eval.yaml"),
    (JudgeEvalConfig, "configs/eval/judge_eval.yaml"), (SweepConfig, "configs/sweeps/weights_2x2.yaml"),
])
def test_shipped_configs_still_load(cls, path, monkeypatch):
    monkeypatch.chdir(REPO)  # paths inside them are relative to the repository root
    load_config(cls, path)


def test_quickstart_stages_load_with_their_overrides(monkeypatch):
    """`make quickstart` loads each stage's YAML with the overrides in configs/quickstart.yaml."""
    monkeypatch.chdir(REPO)
    cfg = load_config(QuickstartConfig, "configs/quickstart.yaml")
    for stage, cls in [("pretrain", PretrainRunConfig), ("label", LabelRunConfig), ("data", DataBuildConfig),
                       ("train", RLTrainConfig), ("eval", EvalConfig)]:
        load_config(cls, getattr(cfg, stage).config, getattr(cfg, stage).overrides)


class TestModelNames:
    """A model name that is neither an offline default nor a local folder fails at once when the hub is out of reach,
    instead of after ~50 s of hub retries (48.7 s measured for `load_tokenizer('smollm2-135m-instrct')`)."""

    def test_a_typo_fails_at_once_with_did_you_mean(self):
        from transformers import AutoTokenizer  # noqa: F401 (imported first: its import is not what is timed)

        from pcdrl.models.loading import load_tokenizer

        start = time.monotonic()
        with pytest.raises(ModelNotAvailableError, match=r"model 'smollm2-135m-instrct' is not an offline default, "
                                                         r"not a local folder.*Did you mean 'smollm2-135m-instruct'\?"):
            load_tokenizer("smollm2-135m-instrct")
        assert time.monotonic() - start < 5

    def test_offline_without_the_variable_is_detected_by_a_probe(self, monkeypatch):
        import pcdrl.models.registry as registry

        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        for variable in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setattr(registry, "_reachable", lambda host, port: False)
        with pytest.raises(ModelNotAvailableError, match=r"no network: huggingface\.co:443 is unreachable"):
            registry.check_model_name("org/some-model")
        monkeypatch.setattr(registry, "_reachable", lambda host, port: True)
        registry.check_model_name("org/some-model")  # a hub id, with the hub reachable: the hub gets its chance
        load_config(RLTrainConfig, None, ["judge.backend.model=org/some-model"])
        monkeypatch.setattr(registry, "_reachable", lambda host, port: False)
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")  # behind a proxy we cannot tell: let the hub try
        registry.check_model_name("org/some-model")

    def test_folders_defaults_and_cached_hub_ids_pass_offline(self, tmp_path, monkeypatch):
        import huggingface_hub.constants

        from pcdrl.models.registry import check_model_name

        check_model_name("gemma3-270m")
        check_model_name(str(tmp_path))
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
        (tmp_path / "models--org--cached").mkdir()
        check_model_name("org/cached")

    def test_a_missing_folder_suggests_its_sibling_even_online(self, tmp_path, monkeypatch):
        import pcdrl.models.registry as registry

        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(registry, "_reachable", lambda host, port: True)
        (tmp_path / "tiny-model").mkdir()
        with pytest.raises(ModelNotAvailableError, match=rf"no such local folder\. Did you mean '{tmp_path}/tiny-model'"):
            registry.check_model_name(str(tmp_path / "tiny-modle"))
        (tmp_path / "weights.bin").write_text("x")
        with pytest.raises(ModelNotAvailableError, match=r"is a file, not a model folder"):
            registry.check_model_name(str(tmp_path / "weights.bin"))

    def test_an_http_backend_model_is_the_servers_business(self):
        from pcdrl.models.backends.base import BackendConfig

        BackendConfig(kind="http", base_url="http://127.0.0.1:1/v1", model="whatever-the-server-calls-it")
        with pytest.raises(ConfigError, match=r"^backend\.tokenizer: model 'smollm2-135m-instrct'"):
            BackendConfig(kind="http", base_url="http://127.0.0.1:1/v1", tokenizer="smollm2-135m-instrct")
