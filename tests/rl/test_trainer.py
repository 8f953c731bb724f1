"""GRPO on the tiny pipeline: it trains, reports both judges, and a resumed run equals an uninterrupted one."""
import pytest
import torch
from safetensors.torch import load_file

from pcdrl.runtime.config_loader import ConfigError, load_config
from pcdrl.pcd.train_state import latest_checkpoint
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.rl.trainer import train


def _cfg(pipeline, *extra):
    judge = f"{{name: tiny, backend: {{model: {pipeline['model']}}}}}"
    return load_config(RLTrainConfig, None, [
        f"pcd={pipeline['pcd']}", f"data={pipeline['data']}", "families=[continuation,audit]",
        f"judge={judge}", f"heldout_judges=[{{name: tiny2, template: terse, backend: {{model: {pipeline['model']}}}}}]",
        "policy.k=2", "grpo.group_size=2", "items_per_step=3", "steps=4", "checkpoint_every=1",
        "max_eval_items=6", "rewards={judge_logprob: 1.0, sparsity: 0.1}", "kl.beta=0.05", *extra,
    ])


def _final_weights(out):
    return load_file(latest_checkpoint(out / "checkpoints") / "trainable.safetensors")


def test_grpo_trains_and_resume_is_exact(pipeline, tmp_path):
    summary = train(_cfg(pipeline), tmp_path / "full")
    assert set(summary["heldout_accuracy_rl"]) == {"tiny", "tiny2"} == set(summary["heldout_accuracy_pretrained"])
    full = _final_weights(tmp_path / "full")
    assert any(v.abs().sum() > 0 for k, v in full.items() if "lora_B" in k), "the LoRA weights moved"
    # Stop after 2 steps (a run with steps=2 is a prefix of the same run), then resume to 4.
    train(_cfg(pipeline, "steps=2"), tmp_path / "split")
    cfg = _cfg(pipeline)
    with pytest.raises(ValueError, match="different config \\(fields: lr\\)"):
        train(_cfg(pipeline, "lr=0.1"), tmp_path / "split", resume=True)
    train(cfg, tmp_path / "split", resume=True)
    resumed = _final_weights(tmp_path / "split")
    assert set(resumed) == set(full) and all(torch.equal(resumed[k], full[k]) for k in full)


def test_config_errors(pipeline):
    with pytest.raises(ConfigError, match="unknown reward 'judge_corect'"):
        _cfg(pipeline, "rewards={judge_corect: 1.0}")
    with pytest.raises(ConfigError, match="every weight is zero"):
        _cfg(pipeline, "rewards={judge_correct: 0.0}")
    with pytest.raises(ConfigError, match="grpo.group_size: needs at least 2"):
        _cfg(pipeline, "grpo.group_size=1")
    with pytest.raises(ConfigError, match="algorithm: 'reinforce' is unknown; use grpo or ppo"):
        _cfg(pipeline, "algorithm=reinforce")
    with pytest.raises(ConfigError, match="report_to: .*'tensorbord'.*Did you mean 'tensorboard'"):
        _cfg(pipeline, "report_to=[tensorbord]")


def test_sigkill_five_times_then_resume_gives_the_same_weights(pipeline, tmp_path):
    """Kill the real CLI with SIGKILL at random steps, five times; the resumed run ends bit-identical."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from pcdrl.runtime.config_loader import dump_yaml

    cfg = _cfg(pipeline, "steps=30", "heldout_judges=[]", "max_eval_items=2")
    config = tmp_path / "train.yaml"
    config.write_text(dump_yaml(cfg))
    train(cfg, tmp_path / "reference")
    reference = _final_weights(tmp_path / "reference")

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "killed"
    pointer = out / "checkpoints" / "latest.txt"
    rng = random.Random(0)
    kills, target = 0, 0
    while kills < 5:
        target += rng.randint(2, 4)
        args = [sys.executable, "-m", "pcdrl.cli", "train", str(config), "--out", str(out)] + (["--resume"] if kills else [])
        proc = subprocess.Popen(args, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if pointer.exists() and int(pointer.read_text().strip().removeprefix("step_") or 0) >= target:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed; raise steps"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    train(cfg, out, resume=True)
    resumed = _final_weights(out)
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_a_judge_that_goes_down_checkpoints_and_stops_clearly(pipeline, tmp_path):
    """The judge is a real completions server on loopback, shut down mid-run; resuming after it is back
    ends bit-identical to a run whose judge never failed."""
    import threading
    import time

    from pcdrl.models.backends import BackendError
    from pcdrl.models.server import serve_in_thread

    server, url = serve_in_thread(pipeline["model"])
    port = server.server_address[1]
    http_judge = (f"judge={{name: tiny, template: terse, backend: {{kind: http, model: {pipeline['model']}, base_url: '{url}', "
                  f"tokenizer: {pipeline['model']}, max_retries: 1, backoff_s: 0.01, timeout_s: 5}}}}")
    cfg = _cfg(pipeline, "steps=6", "heldout_judges=[]", "max_eval_items=2", http_judge)
    out = tmp_path / "run"
    pointer = out / "checkpoints" / "latest.txt"

    def stop_server_after_step_two():
        deadline = time.time() + 120
        while time.time() < deadline and not (pointer.exists() and pointer.read_text().strip() >= "step_000002"):
            time.sleep(0.005)
        server.shutdown()
        server.server_close()

    killer = threading.Thread(target=stop_server_after_step_two, daemon=True)
    killer.start()
    with pytest.raises(BackendError, match=r"the judge failed at step \d+ .*failed after 2 attempts.*--resume"):
        train(cfg, out)
    killer.join(timeout=10)
    # The judge comes back on the same port; the run resumes from its checkpoint.
    server, _ = serve_in_thread(pipeline["model"], port=port)
    try:
        train(cfg, out, resume=True)
        train(cfg, tmp_path / "reference")
    finally:
        server.shutdown()
        server.server_close()
    resumed, reference = _final_weights(out), _final_weights(tmp_path / "reference")
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_ppo_trains_its_critic_and_resume_is_exact(pipeline, tmp_path):
    ppo = ["algorithm=ppo", "ppo.samples_per_item=2", "ppo.updates_per_batch=2", "heldout_judges=[]",
           "report_to=[tensorboard]"]
    summary = train(_cfg(pipeline, *ppo), tmp_path / "full")
    assert set(summary["heldout_accuracy_rl"]) == {"tiny"} and summary["train_seconds"] <= summary["wall_seconds"]
    full = _final_weights(tmp_path / "full")
    critic = [k for k in full if k.startswith("critic.")]
    assert critic and any(k.startswith("policy.") and "lora_B" in k for k in full)
    import json

    records = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(r["value_loss"] >= 0 and r["time/judge_s"] > 0 and r["time/update_s"] > 0 for r in records)
    assert list((tmp_path / "full" / "tensorboard").glob("events.out.tfevents.*")), "report_to tensorboard wrote events"
    train(_cfg(pipeline, *ppo, "steps=3"), tmp_path / "split")
    train(_cfg(pipeline, *ppo), tmp_path / "split", resume=True)
    resumed = _final_weights(tmp_path / "split")
    assert set(resumed) == set(full) and all(torch.equal(resumed[k], full[k]) for k in full)


def test_grounding_reward_runs_the_pcd_decoder(pipeline, tmp_path):
    import json

    train(_cfg(pipeline, "steps=1", "heldout_judges=[]", "max_eval_items=2",
               "rewards={judge_logprob: 1.0, grounding: 0.5}"), tmp_path / "run")
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    # The decoder's loss is a positive cross-entropy, so the term (its negative) is below zero and varies.
    assert record["reward/grounding/mean"] < 0 and record["reward/grounding/std"] > 0
