"""Pretraining end to end on a tiny model: outputs, schedule, interruption and exact resume."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pcdrl.runtime.config_loader import load_config
from pcdrl.pcd.config import PretrainRunConfig, TrainConfig
from pcdrl.pcd.corpus import CorpusError
from pcdrl.pcd.pretrain import lr_factor, pretrain

REPO = Path(__file__).resolve().parents[2]


def tiny_overrides(model_dir, corpus, **train):
    values = {
        "pcd.subject_model": model_dir, "pcd.read_layer": 1, "pcd.n_concepts": 64, "pcd.k": 4, "pcd.k_aux": 8,
        "pcd.dead_after_tokens": 64, "pcd.lora_rank": 4, "corpus.path": str(corpus), "corpus.max_windows": 96,
        "window.prefix_len": 4, "window.middle_len": 4, "window.suffix_len": 4,
        "train.steps": 12, "train.batch_size": 4, "train.lr": 3e-3, "train.eval_every": 6, "train.eval_windows": 8,
        "train.checkpoint_every": 4, "train.log_every": 1, "train.seed": 3,
    }
    values.update({f"train.{k}": v for k, v in train.items()})
    return [f"{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in values.items()]


def run_in_process(model_dir, corpus, out, **train):
    cfg = load_config(PretrainRunConfig, None, tiny_overrides(model_dir, corpus, **train))
    return pretrain(cfg, out)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    weights = load_file(run / "pcd" / "encoder.safetensors")
    weights.update({f"decoder.{k}": v for k, v in load_file(run / "pcd" / "decoder" / "adapter_model.safetensors").items()})
    return weights


def test_pretrain_writes_run_folder_and_checkpoint(tiny_model_dir, tiny_corpus, tmp_path, isolated_cache):
    summary = run_in_process(tiny_model_dir, tiny_corpus, tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "pcd/config.json", "pcd/encoder.safetensors"):
        assert (run / name).exists(), name
    for key in ("heldout_suffix_loss", "heldout_suffix_loss_no_concepts", "heldout_suffix_loss_raw_activations",
                "dead_fraction", "wall_seconds", "bottleneck_gap_closed"):
        assert summary[key] is not None, key
    assert json.loads((run / "summary.json").read_text())["heldout_suffix_loss"] == summary["heldout_suffix_loss"]
    assert 0.0 <= summary["dead_fraction"] <= 1.0
    # The second run reads S's activations from the disk cache instead of running S.
    again = run_in_process(tiny_model_dir, tiny_corpus, tmp_path / "run2", baselines=[])
    assert again["activation_cache_hit"] is True
    assert again["heldout_suffix_loss"] == summary["heldout_suffix_loss"]


def test_cosine_horizon_counts_optimizer_steps(tiny_model_dir, tiny_corpus, tmp_path, isolated_cache):
    train = TrainConfig(steps=10, warmup_steps=2, min_lr_ratio=0.1)
    assert lr_factor(0, train) == 0.5 and lr_factor(1, train) == 1.0
    assert lr_factor(2, train) == 1.0 and abs(lr_factor(10, train) - 0.1) < 1e-9
    run_in_process(tiny_model_dir, tiny_corpus, tmp_path / "run", grad_accum=3, steps=8, baselines=[])
    lrs = [r["lr"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) if "lr" in r]
    # With 3 micro-batches per step the schedule still runs its whole course in 8 optimizer steps.
    assert len(lrs) == 8 and lrs[-1] < 0.05 * 3e-3 and lrs == sorted(lrs, reverse=True)


def test_corpus_shorter_than_one_window_is_refused(tiny_model_dir, tmp_path, isolated_cache):
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(CorpusError, match=r"shorter than one window of 12 .*add text or shorten the window"):
        run_in_process(tiny_model_dir, short, tmp_path / "run")


def _cli(model_dir, corpus, out, *extra, **train):
    cmd = [sys.executable, "-m", "pcdrl.cli", "pretrain", str(REPO / "pcdrl/configs/pcd/quickstart.yaml"), "--out", str(out)]
    return cmd + tiny_overrides(model_dir, corpus, **train) + list(extra)


def _wait_for_checkpoint(run: Path, proc, min_step: int = 1, timeout: float = 120) -> int:
    deadline = time.time() + timeout
    pointer = run / "checkpoints" / "concepts" / "latest.txt"
    while time.time() < deadline:
        if pointer.exists():
            step = int(pointer.read_text().strip().split("_")[1])
            if step >= min_step:
                return step
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.01)
    raise TimeoutError("no checkpoint appeared")


LONG = dict(steps=150, checkpoint_every=1, eval_every=1000, baselines=[])


def test_sigkill_then_resume_is_bitwise_identical(tiny_model_dir, tiny_corpus, tmp_path, isolated_cache):
    run_in_process(tiny_model_dir, tiny_corpus, tmp_path / "straight", **LONG)
    rng = random.Random(os.getpid())
    for attempt in range(2):
        run = tmp_path / f"killed{attempt}"
        proc = subprocess.Popen(_cli(tiny_model_dir, tiny_corpus, run, **LONG), cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen = _wait_for_checkpoint(run, proc)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        pointer = run / "checkpoints" / "concepts" / "latest.txt"
        assert int(pointer.read_text().strip().split("_")[1]) >= seen, "a completed checkpoint was lost"
        resumed = subprocess.run(_cli(tiny_model_dir, tiny_corpus, run, "--resume", **LONG), cwd=REPO,
                                 capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        straight, again = final_weights(tmp_path / "straight"), final_weights(run)
        assert straight.keys() == again.keys()
        for name in straight:
            assert torch.equal(straight[name], again[name]), name


def test_sigterm_checkpoints_the_current_step_and_exits(tiny_model_dir, tiny_corpus, tmp_path, isolated_cache):
    run = tmp_path / "run"
    long = dict(LONG, checkpoint_every=1000)
    proc = subprocess.Popen(_cli(tiny_model_dir, tiny_corpus, run, **long), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text().strip():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "--resume" in stderr
    logged = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    saved = int((run / "checkpoints/concepts/latest.txt").read_text().strip().split("_")[1])
    assert saved == max(logged), "every completed step must be in the checkpoint"
    refused = subprocess.run(_cli(tiny_model_dir, tiny_corpus, run, **long), cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr
