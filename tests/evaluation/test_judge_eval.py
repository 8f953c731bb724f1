"""Data build and judge-eval end to end on the tiny model: every family, every row, resume after a kill."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pcdrl.behaviors.build import load_items
from pcdrl.behaviors.config import DataBuildConfig
from pcdrl.runtime.config_loader import load_config
from pcdrl.evaluation.judge_eval import judge_eval
from pcdrl.evaluation.judge_eval_config import JudgeEvalConfig

REPO = Path(__file__).resolve().parents[2]


def test_dataset_records_model_layer_positions_and_splits(pipeline):
    items = load_items(pipeline["data"])
    summary = pipeline["summary"]
    assert {it["family"] for it in items} == {"continuation", "attributes", "audit"}
    assert all(it["model"] == pipeline["model"] and it["layer"] == 1 for it in items)
    assert all(it["split"] in ("train", "test") and it["read_positions"] for it in items)
    assert summary["groups_in_both_splits"] == 0
    cont = [it for it in items if it["family"] == "continuation"]
    assert all(len(it["options"]) == 4 and len(set(it["options"])) == 4 for it in cont)
    assert all(it["read_positions"] == [4, 5, 6, 7] and len(it["input_ids"]) == 8 for it in cont)
    for split in ("train", "test"):  # distractors never cross the split
        texts = {it["options"][it["answer"]] for it in cont if it["split"] == split}
        assert all(set(it["options"]) <= texts for it in cont if it["split"] == split)
    # S's random text never refuses: the attribute is dropped with a reason, not kept unbalanced.
    assert "refusal" in summary["dropped_attributes"]
    audit = {it["id"]: it for it in items if it["family"] == "audit"}
    assert audit["audit/audit/0002"]["answer"] == 1 and audit["audit/audit/0002"]["split"] == "test"
    assert audit["audit/audit/0001"]["options"] == ["Short", "Medium", "Long"]
    assert (pipeline["data"] / "summary.json").exists() and (pipeline["data"] / "generations.jsonl").exists()


def _eval_cfg(pipeline, extra=()):
    return load_config(JudgeEvalConfig, None, [
        f"data={pipeline['data']}", f"pcd={pipeline['pcd']}", "n_concepts_shown=2", "items_per_call=4",
        f"judges=[{{name: tiny, backend: {{model: {pipeline['model']}}}}}]", *extra,
    ])


def test_judge_eval_reports_every_row_with_intervals(pipeline, tmp_path):
    summary = judge_eval(_eval_cfg(pipeline), tmp_path / "eval")
    acc = summary["accuracy"]["tiny"]
    assert set(acc) >= {"continuation", "attributes", "audit", "all"}
    for family, rows in acc.items():
        assert set(rows) == {"prior", "random", "pretrained", "oracle"}
        # Calibrated, the prior is uniform over options: exactly chance.
        assert rows["prior"] == pytest.approx(summary["chance"][family], abs=1e-3)
        for row, value in rows.items():
            low, high = summary["ci95"]["tiny"][family][row]
            assert low - 1e-6 <= value <= high + 1e-6
    examples = [json.loads(x) for x in (tmp_path / "eval" / "examples.jsonl").read_text().splitlines()]
    assert examples and set(examples[0]["labels"]) == {"random", "pretrained"}
    assert len(examples[0]["labels"]["pretrained"]) == 2


def test_judge_eval_resumes_after_a_kill(pipeline, tmp_path):
    reference = judge_eval(_eval_cfg(pipeline), tmp_path / "reference")
    config = tmp_path / "eval.yaml"
    config.write_text((tmp_path / "reference" / "config.yaml").read_text().replace("items_per_call: 4", "items_per_call: 1"))
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pcdrl.cli", "judge-eval", str(config), "--out", str(out)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / "scores.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 10):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(journal.read_text().splitlines())
    assert done_before >= 10 and not (out / "summary.json").exists(), "the kill must land mid-run"
    resumed = judge_eval(load_config(JudgeEvalConfig, config), out)
    lines = journal.read_text().splitlines()
    keys = [json.loads(line)["key"] for line in lines if line.startswith("{") and line.endswith("}")]
    assert len(keys) == len(set(keys)), "finished items must not be scored twice"
    assert resumed["accuracy"] == reference["accuracy"] and resumed["ci95"] == reference["ci95"]


def test_config_errors(pipeline):
    from pcdrl.runtime.config_loader import ConfigError

    with pytest.raises(ConfigError, match="rows: unknown row"):
        _eval_cfg(pipeline, ["rows=[prior,best]"])
    with pytest.raises(ConfigError, match=r"attributes.checkers: unknown checker\(s\) \['refusals'\]"):
        load_config(DataBuildConfig, None, ["attributes.checkers=[refusals]"])
    with pytest.raises(FileNotFoundError, match="holds no behaviour dataset"):
        load_items(pipeline["root"])
