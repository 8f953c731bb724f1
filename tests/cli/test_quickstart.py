"""`pcdrl quickstart` end to end on the real default models, shrunk to CI size: every stage runs, the
table prints, a rerun is all cached, and a changed stage reruns with the stages after it only."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMALL = """
pretrain:
  config: configs/pcd/quickstart.yaml
  overrides: ["train.baselines=[]", train.steps=2, corpus.max_windows=96, train.eval_windows=8, train.eval_every=2,
              train.checkpoint_every=2]
label:
  config: configs/pcd/label_quickstart.yaml
  overrides: [label.label_windows=64, label.max_concepts=4, label.min_examples=2, label.score_positives=2,
              label.score_negatives=2]
data:
  config: configs/data/quickstart.yaml
  overrides: [attributes.enabled=false, continuation.n_items=24, split.test_fraction=0.5]
train:
  config: configs/rl/grpo_concepts.yaml
  overrides: [steps=1, items_per_step=2, grpo.group_size=2, policy.k=4, max_eval_items=2, "heldout_judges=[]",
              evaluate_pretrained=false]
eval:
  config: configs/eval/eval.yaml
  overrides: [max_items=4, fidelity_concepts=2, fidelity.label_windows=32, fidelity.min_examples=1,
              fidelity.score_positives=1, fidelity.score_negatives=1, examples=2, bootstrap_resamples=200]
"""


def _quickstart(config: Path, out: Path, *overrides: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "pcdrl.cli", "quickstart", "--config", str(config), "--out", str(out),
                             *overrides], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.real_model
def test_quickstart_runs_every_stage_then_reruns_from_cache(tmp_path):
    config, out = tmp_path / "quickstart.yaml", tmp_path / "qs"
    config.write_text(SMALL)
    first = _quickstart(config, out)
    assert "| rl |" in first.stdout and "| oracle |" in first.stdout and "rl − pretrained" in first.stdout
    # 1 step x 2 items x 2 samples; the verdict under the table says what this run can and cannot show.
    assert "it trains on 4 judged explanations" in first.stdout or "RL helped the training judge" in first.stdout
    record = json.loads((out / "quickstart.json").read_text())
    assert list(record["stage_seconds"]) == ["pretrain", "label", "data", "train", "eval"]
    assert (out / "eval" / "report.html").stat().st_size > 10_000
    assert json.loads((out / "pcd-pretrain" / "pcd" / "concepts.json").read_text())["concepts"], "labelled"

    second = _quickstart(config, out)
    assert "stages run: all cached" in second.stderr and second.stdout == first.stdout

    # A new train setting: train and eval rerun afresh; the PCD, its labels and the data stay.
    third = _quickstart(config, out, "train.overrides=[steps=2, items_per_step=2, grpo.group_size=2, policy.k=4, "
                                     "max_eval_items=2, 'heldout_judges=[]', evaluate_pretrained=false]")
    assert list(json.loads((out / "quickstart.json").read_text())["stage_seconds"]) == ["train", "eval"]
    steps = [json.loads(line)["step"] for line in (out / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2], "the train stage started afresh, not on top of the old run"
    assert "| rl |" in third.stdout
