"""report_to fan-out: values written to tensorboard / offline wandb are read back with each tool's own reader."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pcdrl.runtime.reporting import Reporter, ReportConfigError, _wandb_mode, check_report_to

STEPS = [
    (1, {"loss": 0.5, "reward": {"mean": 1.0, "std": 0.1}, "nan": float("nan"), "inf": float("inf"), "note": "x"}),
    (2, {"loss": 0.25, "reward": {"mean": 2.0, "std": 0.2}, "nan": float("nan"), "note": "y"}),
    (3, {"loss": 0.125, "reward": {"mean": 3.0, "std": 0.3}, "items": [1, 2]}),
]


def test_check_report_to_suggests_closest():
    with pytest.raises(ReportConfigError, match="tensorboard") as err:
        check_report_to(["tensorbord"])
    assert str(err.value) == "unknown report_to 'tensorbord' (known: wandb, tensorboard). Did you mean 'tensorboard'?"
    with pytest.raises(ReportConfigError, match="known: wandb, tensorboard"):
        check_report_to(["mlflow"])
    assert check_report_to(["wandb", "tensorboard", "wandb"]) == ["wandb", "tensorboard"]
    assert check_report_to("wandb") == ["wandb"]
    assert check_report_to([]) == []


def test_empty_report_to_imports_and_writes_nothing(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from pcdrl.runtime.reporting import Reporter
        with Reporter({str(tmp_path / 'run')!r}, [], {{}}, "x") as r:
            r.log(1, {{"loss": 1.0}})
            r.summary({{"loss": 1.0}})
        assert "wandb" not in sys.modules and "torch" not in sys.modules, sorted(sys.modules)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
    assert not (tmp_path / "run").exists()


def test_missing_library_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(ReportConfigError, match="pip install wandb"):
        Reporter(tmp_path, ["wandb"], {}, "x")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ReportConfigError, match="pip install tensorboard"):
        Reporter(tmp_path, ["tensorboard"], {}, "x")


def test_tensorboard_scalars_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Reporter(tmp_path, ["tensorboard"], {"lr": 1e-5}, "tb") as reporter:
        for step, metrics in STEPS:
            reporter.log(step, metrics)
        reporter.summary({"final": {"loss": 0.125}, "best_checkpoint": "checkpoints/step-3"})

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert tags == {"loss", "reward/mean", "reward/std", "summary/final/loss"}

    def read(tag):
        return [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]

    assert read("loss") == [(1, 0.5), (2, 0.25), (3, 0.125)]
    assert read("reward/mean") == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert read("reward/std") == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert read("summary/final/loss") == [(3, 0.125)]
    assert "summary/text_summary" in acc.Tags()["tensors"]


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """No API key and no WANDB_MODE: the Reporter must pick offline by itself. wandb's own dirs go to tmp."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))
    return tmp_path / "run"


@pytest.mark.parametrize("env, mode", [
    ({}, "offline"),
    ({"WANDB_API_KEY": "k"}, "online"),
    ({"WANDB_API_KEY": "k", "WANDB_MODE": "offline"}, "offline"),
    ({"WANDB_MODE": "disabled"}, "disabled"),
    ({"WANDB_MODE": "dryrun"}, "offline"),
    ({"WANDB_MODE": "online"}, "online"),
])
def test_wandb_mode(monkeypatch, env, mode):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert _wandb_mode() == mode


def _inspect(wandb_file) -> list[dict]:
    """wandb's own transaction-log reader (`wandb leet inspect --json`, wandb >= 0.31)."""
    proc = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(wandb_file)],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 and "No such command" in proc.stderr:
        pytest.skip("this wandb has no `leet inspect` reader")
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_wandb_offline_run_and_resume(offline_wandb):
    run_dir = offline_wandb
    with Reporter(run_dir, ["wandb"], {"lr": 1e-5, "model": {"name": "tiny"}}, "wb") as reporter:
        assert reporter.wandb_run.settings.mode == "offline"
        for step, metrics in STEPS[:2]:
            reporter.log(step, metrics)
        reporter.summary({"final": {"loss": 0.25}})
        run_id, first_log = reporter.wandb_run.id, Path(reporter.wandb_run.settings.sync_file)
    assert (run_dir / "wandb_id.txt").read_text().strip() == run_id
    [folder] = (run_dir / "wandb").glob("offline-run-*")
    assert folder == first_log.parent and list(folder.glob("*.wandb")) == [first_log]

    records = _inspect(first_log)
    history = [r["history"] for r in records if r["type"] == "history"]
    assert [h["step"]["num"] for h in history] == [1, 2]
    assert [h["item"]["loss"] for h in history] == [0.5, 0.25]
    assert history[1]["item"]["reward/mean"] == 2.0
    assert not {"nan", "inf", "note"} & set(history[0]["item"])
    [run] = [r["run"] for r in records if r["type"] == "run"]
    assert run["config"]["update"]["model"] == {"name": "tiny"} and run["display_name"] == "wb"
    summary = {}
    for r in records:
        if r["type"] == "summary":
            summary.update(r["summary"].get("update", {}))
    assert summary["final/loss"] == 0.25

    with Reporter(run_dir, ["wandb"], {"lr": 1e-5}, "wb", resume=True) as reporter:
        assert reporter.wandb_run.id == run_id
        reporter.log(3, STEPS[2][1])
        resumed_log = Path(reporter.wandb_run.settings.sync_file)
    assert resumed_log.parent != first_log.parent  # a resumed offline run is a new folder, same id; `wandb sync` joins them
    records = _inspect(resumed_log)
    [resumed] = [r["run"] for r in records if r["type"] == "run"]
    assert resumed["run_id"] == run_id and resumed.get("resume") is True
    assert [r["history"]["step"]["num"] for r in records if r["type"] == "history"] == [3]

    with Reporter(run_dir, ["wandb"], {}, "wb") as reporter:  # no resume: a fresh id
        new_id = reporter.wandb_run.id
    assert new_id != run_id and (run_dir / "wandb_id.txt").read_text().strip() == new_id
