"""`pcdrl train` end to end on the real default models: SmolLM2 is S, the PCD's decoder and the judge.

The PCD is freshly initialised (pretraining is tested elsewhere, and takes minutes), with a label per
concept; the behaviour questions come from S itself. Two GRPO steps, then the summary and a resume,
then `pcdrl eval` on the run: every row, both label controls and the fidelity control.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORDS = "river king sword bread light temple wind letter silver garden night horse".split()


@pytest.mark.real_model
def test_train_cli_on_smollm2(tmp_path):
    from dataclasses import asdict

    from pcdrl.pcd.config import CorpusConfig, PCDConfig, WindowConfig
    from pcdrl.pcd.model import PCD

    pcd = PCD.create(PCDConfig(lora_dropout=0.0), seed=0).eval()
    ids = pcd.tokenizer("In the beginning God created the heaven and the earth. And the earth was without form.",
                        return_tensors="pt").input_ids
    pcd.encoder.fit_input_stats(pcd.read_activations(ids)[0], pcd.embedding_norm())
    pcd.concepts = {"concepts": [{"id": i, "label": f"the words \"{WORDS[i % 12]}\", \"{WORDS[(i * 5) % 12]}\""}
                                 for i in range(0, pcd.config.n_concepts, 2)]}  # odd concepts stay unlabelled
    # What pretraining records, so that the fidelity control can cut held-out windows of the same corpus.
    pcd.training_data = {"corpus": asdict(CorpusConfig(sources=["kjv"], max_windows=64)),
                         "window": asdict(WindowConfig(prefix_len=8, middle_len=8, suffix_len=8)), "seed": 0}
    pcd.save_pretrained(tmp_path / "pcd")

    def cli(*args):
        result = subprocess.run([sys.executable, "-m", "pcdrl.cli", *args], cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    cli("data", "build", "configs/data/quickstart.yaml", "--out", str(tmp_path / "data"), f"pcd={tmp_path / 'pcd'}",
        "continuation.n_items=24", "attributes.enabled=false", "split.test_fraction=0.5")
    train = ["train", "configs/rl/grpo_concepts.yaml", "--out", str(tmp_path / "run"), f"pcd={tmp_path / 'pcd'}",
             f"data={tmp_path / 'data'}", "heldout_judges=[]", "items_per_step=2", "grpo.group_size=2", "policy.k=4",
             "max_eval_items=4", "checkpoint_every=1", "report_to=[tensorboard]"]
    cli(*train, "steps=1")
    summary = json.loads(cli(*train, "steps=2", "--resume"))
    assert 0 <= summary["heldout_accuracy_rl"]["smollm2"] <= 1 and 0 <= summary["heldout_accuracy_pretrained"]["smollm2"] <= 1
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2], "the resumed run continued at step 2"
    assert all(r["time/judge_s"] > 0 and r["reward/judge_logprob/mean"] <= 0 for r in records)
    assert (tmp_path / "run" / "checkpoints" / "step_000002" / "trainable.safetensors").exists()

    # The same PCD and questions with a formula policy: every sampled formula is well-formed and true on its item.
    from pcdrl.explanations import parse, to_text

    formulas = tmp_path / "run-formulas"
    cli("train", "configs/rl/grpo_formulas.yaml", "--out", str(formulas), f"pcd={tmp_path / 'pcd'}",
        f"data={tmp_path / 'data'}", "heldout_judges=[]", "items_per_step=2", "grpo.group_size=2", "max_eval_items=4",
        "steps=1", "formula.warm_start_steps=10", "judge.backend.dtype=fast")
    record = json.loads((formulas / "metrics.jsonl").read_text().splitlines()[0])
    assert record["formula/true_share"] == 1.0 and math.isfinite(record["reward/judge_true_pmi/mean"])
    sampled = [json.loads(line) for line in (formulas / "formulas.jsonl").read_text().splitlines()]
    assert len(sampled) == 4 and all(row["true"] for row in sampled)
    labels = {c["id"]: c["label"] for c in pcd.concepts["concepts"]}
    # (These test labels repeat, so the judge's text is checked against the id form rather than parsed back.)
    assert all(to_text(parse(row["formula"], labels), labels) == row["text"] for row in sampled), \
        "the judge read each sampled formula over labelled concepts"

    out = tmp_path / "eval"
    cli("eval", str(tmp_path / "run"), "--out", str(out), "max_items=6", "examples=2", "fidelity_concepts=3",
        "fidelity.label_windows=64", "fidelity.min_examples=1", "fidelity.score_positives=1",
        "fidelity.score_negatives=2", "bootstrap_resamples=200")
    result = json.loads((out / "summary.json").read_text())
    assert set(result["accuracy"]["smollm2"]) == {"prior", "random", "pretrained", "rl", "oracle"}
    assert result["accuracy"]["smollm2"]["oracle"] > result["accuracy"]["smollm2"]["prior"], "S's own output helps"
    assert set(result["controls"]["shuffled_labels"]) == {"smollm2"} == set(result["controls"]["paraphrased_labels"])
    fidelity = result["controls"]["fidelity"]
    assert fidelity["n_concepts"] + len(fidelity["skipped"]) == 3
    assert (out / "report.html").stat().st_size > 10_000 and (out / "plots" / "reward_curve.png").exists()
