"""The `pcdrl` command line: errors are one clear line and exit code 2, before any model loads."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pcdrl(*args):
    return subprocess.run([sys.executable, "-m", "pcdrl.cli", *args], cwd=REPO, capture_output=True, text=True)


def test_unknown_config_key_fails_naming_it(tmp_path):
    result = pcdrl("pretrain", "configs/pcd/quickstart.yaml", "--out", str(tmp_path / "run"), "pcd.kk=3")
    assert result.returncode == 2
    assert "pcd.kk: unknown key" in result.stderr and "Did you mean 'k'" in result.stderr
    assert not (tmp_path / "run").exists(), "a bad config must fail before the run folder is made"


def test_k_above_dictionary_size_fails_naming_both_fields(tmp_path):
    result = pcdrl("pretrain", "configs/pcd/quickstart.yaml", "--out", str(tmp_path / "run"), "pcd.k=4096")
    assert result.returncode == 2 and "pcd.k: 4096 active concepts cannot exceed" in result.stderr
    assert "n_concepts=1024" in result.stderr


def test_label_on_a_folder_that_is_not_a_checkpoint(tmp_path):
    result = pcdrl("label", str(tmp_path), "--out", str(tmp_path / "label"))
    assert result.returncode == 2 and "is not a PCD checkpoint: missing config.json" in result.stderr


def test_stray_arguments_are_rejected():
    result = pcdrl("pretrain", "configs/pcd/quickstart.yaml", "--bogus")
    assert result.returncode == 2 and "unrecognized arguments: --bogus" in result.stderr


def test_train_refuses_unknown_rewards_before_loading_anything(tmp_path):
    result = pcdrl("train", "configs/rl/grpo_concepts.yaml", "--out", str(tmp_path / "run"), "rewards={judge_corect: 1}")
    assert result.returncode == 2 and "unknown reward 'judge_corect'; built-in rewards:" in result.stderr
    assert not (tmp_path / "run").exists()


def test_quickstart_verdict_says_plainly_whether_the_run_shows_a_gain():
    from pcdrl.cli import _quickstart_verdict

    def summary(low, high):
        return {"judges": {"smollm2": {"role": "training"}, "gemma": {"role": "held-out"}}, "n_items": 40,
                "gain": {"smollm2": {"rl_minus_pretrained": (low + high) / 2, "ci95": [low, high]},
                         "gemma": {"rl_minus_pretrained": 0.3, "ci95": [0.2, 0.4]}}}

    holds_zero = _quickstart_verdict(summary(-0.1, 0.1), 896)
    assert "does not show an RL gain" in holds_zero and "896 judged explanations" in holds_zero
    assert "scripts/bench_rl_gain.py" in holds_zero, "it points to the benchmark that does show it"
    # Only the training judge's interval decides; the held-out judge above zero does not make it a gain.
    shows = _quickstart_verdict(summary(0.05, 0.15), 896)
    assert shows.strip() == "RL helped the training judge in this run: +0.100 [+0.050, +0.150] on 40 held-out items."


def test_serve_refuses_a_remote_host_and_an_unknown_limit_before_loading_a_model():
    remote = pcdrl("serve", "--host", "0.0.0.0")
    assert remote.returncode == 2 and "--allow-remote" in remote.stderr and "no authentication" in remote.stderr
    limit = pcdrl("serve", "--limit", "bogus=3")
    assert limit.returncode == 2 and "bogus" in limit.stderr and "max_tokens" in limit.stderr


def test_eval_reads_an_override_whose_value_is_a_path(tmp_path):
    """`matched_concepts=[runs/x/seed0]` holds a "/", yet it is an override of an EvalConfig field, not a run folder:
    its check (the matched row needs the rl row) fires, before any run is read."""
    result = pcdrl("eval", str(tmp_path / "run"), "matched_concepts=[runs/concepts-k4/seed0]", "rows=[prior]", "controls=[]",
                   "--out", str(tmp_path / "eval"))
    assert result.returncode == 2 and "matched_concepts" in result.stderr, result.stderr
    assert "concepts-k4/seed0 does not exist" not in result.stderr
    assert not (tmp_path / "eval").exists()
