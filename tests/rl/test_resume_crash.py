"""A save killed at each of its steps leaves a run that resumes from a complete checkpoint: never a half-written
one, never step 0 without a word. Crash points are injected with PCDRL_CRASH_AT (test-only; pcdrl/pcd/train_state.py)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pcdrl.runtime.config_loader import dump_yaml, load_config
from pcdrl.pcd.train_state import CheckpointError, is_complete, latest_checkpoint, resolve_checkpoint
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.rl.trainer import train

REPO = Path(__file__).resolve().parents[2]

# Saves steps 1..4 of a tiny module whose weight equals the step, re-saving step 3 once (as the trainer does
# when the judge fails just after a checkpoint): the only save whose swap needs two renames.
SAVER = """
import sys, torch
from pathlib import Path
from pcdrl.pcd.train_state import save_train_state
module = torch.nn.Linear(3, 3)
optimizer = torch.optim.Adam(module.parameters())
for step in (1, 2, 3, 3, 4):
    with torch.no_grad():
        module.weight.fill_(step)
    save_train_state(Path(sys.argv[1]), step, module, optimizer, {})
"""


def _save_until_killed(folder: Path, crash_at: str) -> int:
    proc = subprocess.run([sys.executable, "-c", SAVER, str(folder)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "PCDRL_CRASH_AT": crash_at})
    return proc.returncode


@pytest.mark.parametrize("crash_at, resumes_at, warns", [
    ("files_written:3", 2, False),
    ("before_rename:3", 2, False),
    ("after_second_rename:3", 2, False),  # step_000003 is in place, the pointer still names step 2
    ("after_pointer:3", 3, False),
    ("mid_prune:3", 3, False),
    ("after_first_rename:3", 3, True),  # the re-save of step 3: latest.txt names a folder that is gone
])
def test_a_kill_at_each_step_of_a_save_leaves_a_complete_checkpoint(tmp_path, crash_at, resumes_at, warns, capsys):
    folder = tmp_path / "checkpoints"
    assert _save_until_killed(folder, crash_at) == -signal.SIGKILL
    checkpoint = latest_checkpoint(folder)
    warning = capsys.readouterr().err
    state = json.loads((checkpoint / "state.json").read_text())
    weight = load_file(checkpoint / "trainable.safetensors")["weight"]
    assert state["step"] == resumes_at and torch.all(weight == resumes_at), "the checkpoint is whole and of its step"
    assert all(is_complete(p) for p in folder.glob("step_*")), "no visible step folder is half written or deleted"
    if warns:
        assert "latest.txt points at step_000003, which is missing" in warning
        assert f"resuming from the newest complete checkpoint, {checkpoint}" in warning
    else:
        assert warning == ""
    # The next save after a resume cleans up what the kill left, and nothing else.
    subprocess.run([sys.executable, "-c", SAVER, str(folder)], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO), "PCDRL_CRASH_AT": ""})
    assert sorted(p.name for p in folder.iterdir()) == ["latest.txt", "step_000003", "step_000004"]


def test_a_dangling_pointer_with_nothing_complete_left_is_an_error_not_step_0(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "latest.txt").write_text("step_000007\n")
    (folder / "step_000006").mkdir()
    (folder / "step_000006" / "state.json").write_text('{"step": 6}')  # its weights never made it
    with pytest.raises(CheckpointError, match=r"points at step_000007, which is missing, and no complete checkpoint "
                                              r"is left in .*cannot be resumed.*--force"):
        resolve_checkpoint(folder)
    assert resolve_checkpoint(tmp_path / "nothing") == (None, None)


def test_truncated_weights_are_not_a_complete_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints"
    assert _save_until_killed(folder, "after_pointer:2") == -signal.SIGKILL
    weights = folder / "step_000002" / "optimizer.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])  # what a power cut without fsync can leave
    path, warning = resolve_checkpoint(folder)
    assert path == folder / "step_000001" and "step_000002, which is incomplete" in warning


def test_resume_says_so_when_there_is_nothing_to_resume(tmp_path, capsys):
    from pcdrl.cli import _check_resume

    _check_resume(tmp_path / "new", resume=True)
    assert "nothing to resume; starting a new run" in capsys.readouterr().err
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("# pcdrl train\n")
    _check_resume(run, resume=True)
    assert "no finished checkpoint (it stopped before its first save); starting it at step 0" in capsys.readouterr().err
    (run / "checkpoints" / "latest.txt").write_text("step_000002\n")
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        _check_resume(run, resume=True)
    with pytest.raises(ValueError, match="already holds a run with checkpoints: pass --resume"):
        _check_resume(run, resume=False)


# --- the real `pcdrl train`, killed mid-save -------------------------------------------------------------------


def _cfg(pipeline):
    judge = f"{{name: tiny, backend: {{model: {pipeline['model']}}}}}"
    return load_config(RLTrainConfig, None, [
        f"pcd={pipeline['pcd']}", f"data={pipeline['data']}", "families=[continuation,audit]", f"judge={judge}",
        "heldout_judges=[]", "policy.k=2", "grpo.group_size=2", "items_per_step=3", "steps=4", "checkpoint_every=1",
        "max_eval_items=2", "rewards={judge_logprob: 1.0, sparsity: 0.1}", "kl.beta=0.05",
    ])


@pytest.fixture(scope="module")
def reference(pipeline, tmp_path_factory):
    cfg = _cfg(pipeline)
    root = tmp_path_factory.mktemp("resume-crash")
    train(cfg, root / "reference")
    config = root / "train.yaml"
    config.write_text(dump_yaml(cfg))
    return {"cfg": cfg, "config": config, "weights": _weights(root / "reference")}


def _weights(run: Path) -> dict:
    return load_file(latest_checkpoint(run / "checkpoints") / "trainable.safetensors")


def _cli_train(config: Path, out: Path, *extra: str, crash_at: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pcdrl.cli", "train", str(config), "--out", str(out), *extra],
                          cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "PCDRL_CRASH_AT": crash_at})


def _steps_logged(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("crash_at, resumed_from", [("files_written:3", 2), ("after_pointer:3", 3),
                                                    ("mid_prune:3", 3)])
def test_train_killed_mid_save_resumes_from_a_complete_checkpoint_bitwise(reference, tmp_path, crash_at, resumed_from):
    out = tmp_path / "run"
    killed = _cli_train(reference["config"], out, crash_at=crash_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert _steps_logged(out) == [1, 2, 3]
    train(reference["cfg"], out, resume=True)
    assert _steps_logged(out) == [1, 2, 3, *range(resumed_from + 1, 5)], "resumed where the checkpoint was"
    resumed = _weights(out)
    assert all(torch.equal(resumed[k], reference["weights"][k]) for k in reference["weights"])


def test_train_with_a_dangling_pointer_falls_back_with_a_warning_or_refuses(reference, tmp_path):
    out = tmp_path / "run"
    killed = _cli_train(reference["config"], out, crash_at="after_pointer:3")
    assert killed.returncode == -signal.SIGKILL
    # The state a kill between the two renames of a re-saved step 3 leaves: step 3 only under its hidden old name.
    checkpoints = out / "checkpoints"
    os.replace(checkpoints / "step_000003", checkpoints / ".step_000003.old")
    resumed = _cli_train(reference["config"], out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "latest.txt points at step_000003, which is missing; resuming from the newest complete checkpoint" in \
        resumed.stderr and ".step_000003.old (step 3)" in resumed.stderr
    assert _steps_logged(out) == [1, 2, 3, 4]
    assert all(torch.equal(_weights(out)[k], reference["weights"][k]) for k in reference["weights"])
    # Nothing complete left: --resume fails at once and clearly rather than start again at step 0.
    for step in checkpoints.glob("step_*"):
        os.replace(step, checkpoints / f".{step.name}.tmp")
    (checkpoints / "latest.txt").write_text("step_000004\n")
    refused = _cli_train(reference["config"], out, "--resume")
    assert refused.returncode == 2
    assert "latest.txt points at step_000004, which is missing, and no complete checkpoint is left" in refused.stderr
    assert _steps_logged(out) == [1, 2, 3, 4], "nothing ran"
