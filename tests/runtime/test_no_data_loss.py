"""No command overwrites or deletes what it did not make: --out is checked before anything is written, and
--force moves an old folder aside rather than deleting it."""
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pcdrl.runtime.atomic import move_aside
from pcdrl.runtime.config_loader import dump_yaml
from pcdrl.runtime.rundir import RunDir, RunFolderError, check_out

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Inner:
    beta: float = 0.1
    """a nested field"""
    threads: int = 0
    """where it runs"""


@dataclass
class Cfg:
    lr: float = 1e-3
    """a field"""
    steps: int = 4
    """another"""
    kl: Inner = field(default_factory=Inner)
    """a section"""


def _run(folder: Path, command: str, cfg=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(f"# {command}\n" + dump_yaml(cfg or Cfg()))
    (folder / "summary.json").write_text('{"mine": 1}\n')
    return folder


def pcdrl(*args):
    return subprocess.run([sys.executable, "-m", "pcdrl.cli", *args], cwd=REPO, capture_output=True, text=True)


def test_same_verb_and_config_is_free_and_thread_counts_may_differ(tmp_path):
    check_out(tmp_path / "new", "pcdrl train", Cfg())
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty", "pcdrl train", Cfg())
    run = _run(tmp_path / "run", "pcdrl train")
    check_out(run, "pcdrl train", Cfg(kl=Inner(threads=2)))
    check_out(run, "pcdrl train", Cfg(steps=8), may_differ=("steps",))
    sweep_trial = tmp_path / "trial"  # a trial that failed before train wrote anything
    sweep_trial.mkdir()
    (sweep_trial / "stderr.txt").write_text("boom")
    check_out(sweep_trial, "pcdrl train", Cfg())


def test_another_verb_another_config_or_foreign_files_are_refused_naming_the_way_out(tmp_path):
    run = _run(tmp_path / "run", "pcdrl train")
    with pytest.raises(RunFolderError, match=r"holds a `pcdrl train` run, not a `pcdrl eval` one; choose a new --out, "
                                             r"or pass --force to move it aside \(adds \.old-1 to its name; nothing is deleted\)"):
        check_out(run, "pcdrl eval runs/x/checkpoints/step_000001", Cfg())
    with pytest.raises(RunFolderError, match=r"different config \(fields: kl\.beta, steps\); .*--resume.*--force"):
        check_out(run, "pcdrl train", Cfg(steps=5, kl=Inner(beta=0.2)))
    with pytest.raises(RunFolderError, match=r"different config \(fields: lr\); choose a new --out, rerun with its own "
                                             r"config to resume it, or pass --force"):
        check_out(_run(tmp_path / "jev", "pcdrl judge-eval"), "pcdrl judge-eval", Cfg(lr=1.0))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(RunFolderError, match=r"mine is not empty and holds no pcdrl run \(thesis\.tex\)"):
        check_out(mine, "pcdrl data build", Cfg())


def test_other_inputs_are_refused_but_the_same_path_spelled_differently_is_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path / "label", "pcdrl label pcd-a/pcd")
    check_out(run, f"pcdrl label {tmp_path / 'pcd-a' / 'pcd'}/", Cfg())
    with pytest.raises(RunFolderError, match=r"holds a `pcdrl label` run of other inputs \(pcd-a/pcd\)"):
        check_out(run, "pcdrl label pcd-b/pcd", Cfg())


def test_rundir_refuses_before_writing_anything(tmp_path):
    run = _run(tmp_path / "run", "pcdrl train")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(RunFolderError):
        RunDir(run, Cfg(), command="pcdrl eval x")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before, "nothing written, nothing replaced"


def test_move_aside_takes_the_first_unused_name_and_keeps_everything(tmp_path):
    run = _run(tmp_path / "run", "pcdrl train")
    (tmp_path / "run.old-1").mkdir()
    aside = move_aside(run)
    assert aside == tmp_path / "run.old-2" and not run.exists()
    assert (aside / "summary.json").read_text() == '{"mine": 1}\n'


def test_cli_eval_into_a_train_run_is_refused_and_the_run_kept(tmp_path):
    run = _run(tmp_path / "R", "pcdrl train")
    config = (run / "config.yaml").read_bytes()
    result = pcdrl("eval", str(run), "--out", str(run))
    assert result.returncode == 2
    [line] = [x for x in result.stderr.splitlines() if x.startswith("pcdrl eval: error:")]
    assert f"--out {run} holds a `pcdrl train` run" in line and "--force" in line and "new --out" in line
    assert (run / "config.yaml").read_bytes() == config and sorted(p.name for p in run.iterdir()) == [
        "config.yaml", "summary.json"]
    # --force would move the very run eval reads: refused too.
    forced = pcdrl("eval", str(run), "--out", str(run), "--force")
    assert forced.returncode == 2 and "which this command reads" in forced.stderr and run.is_dir()


def test_cli_refuses_a_folder_of_user_files_and_force_moves_it_aside(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    cfg = str(REPO / "pcdrl/configs/data/quickstart.yaml")
    refused = pcdrl("data", "build", cfg, "--out", str(out))
    assert refused.returncode == 2 and "holds no pcdrl run (notes.txt)" in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    # --force moves the folder aside first; the train then fails at once on a PCD that is not there.
    from pcdrl.cli import main

    code = main(["train", str(REPO / "pcdrl/configs/rl/grpo_concepts.yaml"), "--out", str(out), "--force",
                 f"pcd={tmp_path / 'no-pcd'}"])
    assert code == 2
    assert (tmp_path / "out.old-1" / "notes.txt").read_text() == "mine"
    assert "# pcdrl train" in (out / "config.yaml").read_text()


def test_cli_train_refusals_come_before_any_model_loads(tmp_path):
    cfg = REPO / "pcdrl/configs/rl/grpo_concepts.yaml"
    from pcdrl.runtime.config_loader import load_config
    from pcdrl.rl.train_config import RLTrainConfig

    run = tmp_path / "run"
    _run(run, "pcdrl train", load_config(RLTrainConfig, cfg))
    other = pcdrl("train", str(cfg), "--out", str(run), "--resume", "lr=0.5")
    assert other.returncode == 2 and "different config (fields: lr)" in other.stderr and "--resume" in other.stderr
    both = pcdrl("train", str(cfg), "--out", str(run), "--resume", "--force")
    assert both.returncode == 2 and "--force and --resume contradict" in both.stderr
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "summary.json"]


def test_quickstart_moves_a_stale_stage_aside_instead_of_deleting_it(tmp_path):
    from pcdrl.quickstart import Stage, _announce

    folder = _run(tmp_path / "qs" / "grpo", "pcdrl train")
    (folder / "my-notes.txt").write_text("keep me")
    _announce(Stage("train", folder, Cfg(), done=False, stale=True), "GRPO")
    assert not folder.exists()
    assert (tmp_path / "qs" / "grpo.old-1" / "my-notes.txt").read_text() == "keep me"


def test_quickstart_refuses_an_out_with_foreign_files(tmp_path):
    from pcdrl.quickstart import check_quickstart_out

    out = tmp_path / "qs"
    (out / "grpo.old-1").mkdir(parents=True)
    (out / "quickstart.json").write_text("{}")
    check_quickstart_out(out)  # its own stages and moved-aside stages
    (out / "photos").mkdir()
    with pytest.raises(RunFolderError, match=r"holds files that are not quickstart stages \(photos\).*--force"):
        check_quickstart_out(out)
    result = pcdrl("quickstart", "--out", str(out))
    assert result.returncode == 2 and "not quickstart stages (photos)" in result.stderr


def test_sweep_refuses_a_folder_that_is_not_the_same_sweep(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "results.csv").write_text("mine")
    base = ["sweep", str(REPO / "pcdrl/configs/sweeps/weights_2x2.yaml"), "--out", str(out), "steps=1"]
    result = pcdrl(*base)
    assert result.returncode == 2 and "holds no `pcdrl sweep` folder (no sweep.yaml)" in result.stderr
    assert pcdrl(*base, "--dry-run").returncode == 0, "a dry run writes nothing, so it checks nothing"
    assert (out / "results.csv").read_text() == "mine"


def test_a_run_made_before_a_field_existed_still_matches_its_default():
    # A train run saved before policy.kind and formula: existed must not read as "another config".
    import yaml

    from pcdrl.rl.train_config import RLTrainConfig
    from pcdrl.runtime.config_loader import dump_yaml, load_config
    from pcdrl.runtime.rundir import config_differences

    cfg = load_config(RLTrainConfig, REPO / "pcdrl/configs/rl/grpo_concepts.yaml")
    old = yaml.safe_load(dump_yaml(cfg))
    del old["formula"], old["policy"]["kind"]
    assert config_differences(yaml.safe_dump(old), cfg) == []
    changed = load_config(RLTrainConfig, REPO / "pcdrl/configs/rl/grpo_concepts.yaml", ["policy.kind=formulas"])
    assert config_differences(yaml.safe_dump(old), changed) == ["policy.kind"]
