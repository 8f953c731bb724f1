from pathlib import Path

import pytest

from pcdrl.runtime.config_loader import SHIPPED_CONFIGS, ConfigError, load_config, resolve_config_path, shipped_config_names
from pcdrl.pcd.config import PretrainRunConfig


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_yaml_and_dotted_overrides_build_typed_config(tmp_path):
    cfg = load_config(PretrainRunConfig, write(tmp_path, "pcd:\n  k: 8\ntrain:\n  lr: 1e-3\n"),
                      ["train.steps=7", "corpus.sources=[kjv]", "pcd.aux_coef=0"])
    assert cfg.pcd.k == 8 and cfg.train.steps == 7 and cfg.corpus.sources == ["kjv"]
    assert cfg.train.lr == 1e-3 and isinstance(cfg.pcd.aux_coef, float)


def test_unknown_key_names_the_field_and_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"pcd\.kk: unknown key .*Did you mean 'k'"):
        load_config(PretrainRunConfig, write(tmp_path, "pcd:\n  kk: 8\n"))
    with pytest.raises(ConfigError, match=r"trian: unknown key"):
        load_config(PretrainRunConfig, None, ["trian.steps=3"])


def test_wrong_type_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.steps: expected an integer, got 'many'"):
        load_config(PretrainRunConfig, None, ["train.steps=many"])
    with pytest.raises(ConfigError, match=r"train\.cache_activations: expected true or false"):
        load_config(PretrainRunConfig, None, ["train.cache_activations=3"])
    with pytest.raises(ConfigError, match=r"train\.baselines\[0\]: 'none' is not one of"):
        load_config(PretrainRunConfig, None, ["train.baselines=[none]"])


def test_contradictions_fail_at_load_naming_the_field():
    with pytest.raises(ConfigError, match=r"pcd\.k: 64 active concepts cannot exceed .*n_concepts=32"):
        load_config(PretrainRunConfig, None, ["pcd.k=64", "pcd.n_concepts=32"])
    with pytest.raises(ConfigError, match=r"train\.warmup_steps"):
        load_config(PretrainRunConfig, None, ["train.steps=5", "train.warmup_steps=5"])


def test_missing_file_and_malformed_override_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(PretrainRunConfig, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="section.field=value"):
        load_config(PretrainRunConfig, None, ["train.steps"])


def test_shipped_configs_load():
    from pcdrl.pcd.labels_config import LabelRunConfig

    paths = sorted((SHIPPED_CONFIGS / "pcd").glob("*.yaml"))
    assert len(paths) >= 3
    for path in paths:
        load_config(LabelRunConfig if path.name.startswith("label") else PretrainRunConfig, path)


def test_configs_paths_name_the_shipped_yaml_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the shipped file is found
    assert resolve_config_path("configs/pcd/quickstart.yaml") == SHIPPED_CONFIGS / "pcd" / "quickstart.yaml"
    assert load_config(PretrainRunConfig, "configs/pcd/quickstart.yaml").pcd.subject_model == "smollm2-135m-instruct"
    assert "configs/rl/grpo_concepts.yaml" in shipped_config_names()


def test_a_local_file_of_that_path_wins_over_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs" / "pcd").mkdir(parents=True)
    (tmp_path / "configs" / "pcd" / "quickstart.yaml").write_text("train:\n  steps: 7\n")
    assert resolve_config_path("configs/pcd/quickstart.yaml") == Path("configs/pcd/quickstart.yaml")
    assert load_config(PretrainRunConfig, "configs/pcd/quickstart.yaml").train.steps == 7


def test_an_unknown_configs_path_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"configs/pcd/quikstart\.yaml does not exist; .*configs/pcd/quickstart\.yaml"):
        load_config(PretrainRunConfig, "configs/pcd/quikstart.yaml")
