"""`pcdrl eval`: rows × judges with controls on the tiny pipeline, its statistics, and its errors."""
import html
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pcdrl.runtime.config_loader import ConfigError, load_config
from pcdrl.evaluation.eval import evaluate
from pcdrl.evaluation.eval_config import EvalConfig
from pcdrl.evaluation.eval_runs import NotARunError, check_comparable, find_run
from pcdrl.evaluation.stats import paired_difference, verdicts
from pcdrl.pcd.stats import bootstrap_mean
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.rl.trainer import train
from pcdrl.simulators.metrics import expected_accuracy
from pcdrl.simulators.paraphrase import paraphrase_label

REPO = Path(__file__).resolve().parents[2]


# --- statistics and verdicts (pure) ----------------------------------------------------------


def test_bootstrap_over_seeds_widens_the_interval_when_seeds_disagree():
    items = torch.tensor([0.0, 1.0] * 20)
    _, one = bootstrap_mean(items)
    agreeing = torch.stack([items, items])
    disagreeing = torch.stack([items * 0.2, items * 0.2 + 0.8])
    mean_agree, ci_agree = bootstrap_mean(agreeing)
    mean_disagree, ci_disagree = bootstrap_mean(disagreeing)
    assert mean_agree == mean_disagree == 0.5
    assert ci_agree == pytest.approx(one, abs=0.03)
    assert ci_disagree[1] - ci_disagree[0] > 2 * (ci_agree[1] - ci_agree[0])


def test_the_bootstrap_draws_are_pinned():
    """`pcdrl eval`'s intervals are quoted in the README: a change to the bootstrap's draws must show here.
    A one-line matrix draws its run too, so it is not the same draw as the vector of its items."""
    matrix = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0, 0.5, 0.25, 1.0], [0.0, 0.0, 1.0, 0.75, 1.0, 0.5, 0.0, 1.0]])
    assert bootstrap_mean(matrix, 500, 3) == (0.5625, [0.2812, 0.8125])
    assert bootstrap_mean(matrix[:1], 500, 3) == (0.5938, [0.2812, 0.875])


def test_paired_difference_broadcasts_one_line_against_seeds():
    rl = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    pretrained = torch.tensor([0.0, 0.0, 1.0])
    assert paired_difference(rl, pretrained).tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    mean, ci = bootstrap_mean(paired_difference(pretrained, pretrained))
    assert mean == 0 and ci == [0, 0]


def _summary(gain_ci, shuffled_ci, paraphrased_ci):
    return {"judges": {"j": {"model": "m", "role": "training"}},
            "gain": {"j": {"rl_minus_pretrained": 0.1, "ci95": gain_ci}},
            "controls": {"shuffled_labels": {"j": {"gain": 0.1, "gain_ci95": shuffled_ci,
                                                   "meaning": {"difference": 0.0, "ci95": [-0.1, 0.1]}}},
                         "paraphrased_labels": {"j": {"gain": 0.1, "gain_ci95": paraphrased_ci}}}}


def test_verdicts_say_when_the_gain_survives_shuffled_labels():
    survives = " ".join(verdicts(_summary([0.05, 0.2], [0.05, 0.2], [0.05, 0.2])))
    assert "RL helps" in survives and "survives shuffled labels" in survives and "not reading meaning" in survives
    assert "may not read their meaning" in survives
    vanishes = " ".join(verdicts(_summary([0.05, 0.2], [-0.1, 0.1], [-0.1, 0.1])))
    assert "vanishes with shuffled labels" in vanishes and "does not survive paraphrased" in vanishes
    none = " ".join(verdicts(_summary([-0.1, 0.2], [0.05, 0.2], [0.05, 0.2])))
    assert "no measurable gain" in none and "shuffled" in none and "survives" not in none


def test_paraphrase_keeps_the_words_and_changes_the_wording():
    label = 'the words "of", "with", "and"'
    para = paraphrase_label(label)
    assert para != label and "the words" not in para
    assert sorted(para.replace(" and ", ", ").removeprefix("tokens such as ").split(", ")) == ["'and'", "'of'", "'with'"]
    assert paraphrase_label("Names of places in the text") == "related to: Proper nouns of locations in the writing"


@pytest.mark.parametrize("label, expected", [
    ('then "the", "a", "his"', "next comes 'his', 'a' or 'the'"),
    ('on "of", "and"; then "the", "a"', "after tokens such as 'and' and 'of', comes 'a' or 'the'"),
    ('Names of places; then "the"', "after Proper nouns of locations, comes 'the'"),
])
def test_paraphrase_rewords_output_centric_labels_keeping_their_words(label, expected):
    """Output-side (`then ...`) and both-sided labels (pcdrl/pcd/output_labels.py) get their own rewording, not the
    weak 'related to:' fallback."""
    assert paraphrase_label(label) == expected


# --- errors ----------------------------------------------------------------------------------


def test_a_folder_that_is_not_a_run_says_what_was_expected(tmp_path):
    (tmp_path / "stuff.txt").write_text("x")
    with pytest.raises(NotARunError, match=r"not a pcdrl train run \(it has: stuff.txt\).*config.yaml.*trainable.safetensors"):
        find_run(tmp_path)
    result = subprocess.run([sys.executable, "-m", "pcdrl.cli", "eval", str(tmp_path)], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 2 and "pcdrl eval: error:" in result.stderr and "config.yaml" in result.stderr
    with pytest.raises(NotARunError, match="does not exist"):
        find_run(tmp_path / "missing")


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="rows: unknown row"):
        load_config(EvalConfig, None, ["rows=[prior,best]"])
    with pytest.raises(ConfigError, match="controls: unknown control"):
        load_config(EvalConfig, None, ["controls=[shuffled]"])
    with pytest.raises(ConfigError, match="keep both in `rows`"):
        load_config(EvalConfig, None, ["rows=[prior,rl]"])


# --- end to end on the tiny pipeline ---------------------------------------------------------


def _train(pipeline, out, seed):
    judge = f"{{name: tiny, backend: {{model: {pipeline['model']}}}}}"
    cfg = load_config(RLTrainConfig, None, [
        f"pcd={pipeline['pcd']}", f"data={pipeline['data']}", "families=[continuation]", f"judge={judge}",
        f"heldout_judges=[{{name: tiny2, template: terse, backend: {{model: {pipeline['model']}}}}}]",
        "policy.k=2", "grpo.group_size=2", "items_per_step=4", "steps=2", "max_eval_items=2", "lr=0.05",
        "evaluate_pretrained=false", f"seed={seed}",
    ])
    train(cfg, out)
    return out


@pytest.fixture(scope="module")
def two_seeds(pipeline, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-runs")
    return [_train(pipeline, root / f"seed{s}", s) for s in (0, 1)]


def _eval_cfg(pipeline, *extra):
    return load_config(EvalConfig, None, [
        f"fidelity.simulator_model={pipeline['model']}", "fidelity.label_windows=200", "fidelity.min_examples=3",
        "fidelity.score_positives=3", "fidelity.score_negatives=3", "fidelity_concepts=3", "examples=3",
        "items_per_call=4", "bootstrap_resamples=200", *extra])


def test_eval_two_seeds_writes_every_output_and_resumes_from_its_journal(pipeline, two_seeds, tmp_path):
    summary = evaluate(two_seeds, _eval_cfg(pipeline), tmp_path / "eval")
    assert list(summary["accuracy"]) == ["tiny", "tiny2"], "training judge first, then the held-out judge"
    assert summary["judges"]["tiny"]["role"] == "training" and summary["judges"]["tiny2"]["role"] == "held-out"
    assert summary["seeds"] == [0, 1] and summary["n_items"] > 4
    for judge in ("tiny", "tiny2"):
        assert set(summary["accuracy"][judge]) == {"prior", "random", "pretrained", "rl", "oracle"}
        for row, value in summary["accuracy"][judge].items():
            low, high = summary["ci95"][judge][row]
            assert 0 <= low <= value <= high <= 1
        assert summary["accuracy"][judge]["prior"] == pytest.approx(summary["chance"], abs=1e-4), "PMI prior is chance"
        for control in ("shuffled_labels", "paraphrased_labels"):
            entry = summary["controls"][control][judge]
            assert set(entry) >= {"pretrained", "rl", "gain", "gain_ci95"}
    fidelity = summary["controls"]["fidelity"]
    assert fidelity["n_concepts"] + len(fidelity["skipped"]) > 0
    assert summary["controls"]["verdicts"], "the verdicts are spelled out"

    out = tmp_path / "eval"
    examples = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert len(examples) == 3 and set(examples[0]["probs"]["tiny"]) == {"prior", "random", "pretrained", "rl", "oracle"}
    assert all(abs(sum(p) - 1) < 1e-3 for e in examples for p in e["probs"]["tiny2"].values())
    assert (out / "plots" / "reward_curve.png").stat().st_size > 1000
    assert (out / "plots" / "concept_usage.png").stat().st_size > 1000
    page = (out / "report.html").read_text()
    assert html.escape(examples[0]["labels"]["rl"][0]) in page and "data:image/png;base64," in page
    assert "rl − pretrained" in (out / "table.md").read_text()

    # A rerun finds every answer in the journal: no judge call, the same numbers.
    journal_lines = len((out / "scores.jsonl").read_text().splitlines())
    again = evaluate(two_seeds, _eval_cfg(pipeline), out)
    assert len((out / "scores.jsonl").read_text().splitlines()) == journal_lines
    assert again["accuracy"] == summary["accuracy"] and again["controls"]["fidelity"] == fidelity


def test_eval_of_one_checkpoint_and_the_label_controls_change_what_the_judge_reads(pipeline, two_seeds, tmp_path):
    checkpoint = find_run(two_seeds[0]).checkpoint
    cfg = _eval_cfg(pipeline, "controls=[shuffled_labels]", "control_judges=[tiny]", "rows=[prior,pretrained,rl]")
    summary = evaluate([checkpoint], cfg, tmp_path / "one")
    assert summary["seeds"] == [0] and summary["checkpoints"] == [str(checkpoint)]
    assert set(summary["controls"]["shuffled_labels"]) == {"tiny"}, "only the control judge scores the controls"
    assert "fidelity" not in summary["controls"] and "paraphrased_labels" not in summary["controls"]
    # The shuffled rows show other concepts' labels: prompts the real rows never sent to the judge.
    plain = evaluate([checkpoint], _eval_cfg(pipeline, "controls=[]", "rows=[prior,pretrained,rl]"), tmp_path / "plain")
    lines = lambda out: len((out / "scores.jsonl").read_text().splitlines())  # noqa: E731
    assert lines(tmp_path / "one") > lines(tmp_path / "plain") and plain["controls"] == {"verdicts": plain["controls"]["verdicts"]}
    with pytest.raises(ValueError, match="control_judges"):
        evaluate([checkpoint], _eval_cfg(pipeline, "control_judges=[nobody]"), tmp_path / "bad")


def test_one_run_named_thrice_is_not_three_seeds(two_seeds):
    run = two_seeds[0]
    refs = [find_run(run), find_run(f"{run}/"), find_run(find_run(run).checkpoint)]
    with pytest.raises(ValueError, match=r"are checkpoints of one run, .*seed0; pcdrl eval counts each argument as one "
                                         r"seed: name each run once"):
        check_comparable(refs)
    check_comparable([find_run(two_seeds[0]), find_run(two_seeds[1])])  # two seeds pass


def test_items_json_holds_every_item_and_a_simulated_study_reproduces_the_eval(pipeline, two_seeds, tmp_path):
    """items.json carries what each row showed and each judge's answer; a full block of simulated participants,
    answering through the study's HTTP pages with the training judge, reproduces the eval's accuracy per row."""
    from pcdrl.runtime.config_loader import from_dict
    from pcdrl.simulators.config import JudgeConfig
    from pcdrl.simulators.judge import Judge
    from pcdrl.study.serve import StudyServer, open_study
    from pcdrl.study.simulate import simulate

    checkpoint = find_run(two_seeds[0]).checkpoint
    summary = evaluate([checkpoint], _eval_cfg(pipeline, "controls=[]"), tmp_path / "eval")
    document = json.loads((tmp_path / "eval" / "items.json").read_text())
    assert document["rows"] == ["prior", "random", "pretrained", "rl/0", "oracle"]
    assert len(document["items"]) == summary["n_items"] and set(document["judges"]) == {"tiny", "tiny2"}
    assert document["items"][0]["shown"]["oracle"] == {"kind": "oracle", "oracle": document["items"][0]["behaviour"]}
    for judge in ("tiny", "tiny2"):
        rl = [expected_accuracy(it["judged"][judge]["rl/0"]["scores"], it["answer"]) for it in document["items"]]
        assert sum(rl) / len(rl) == pytest.approx(summary["accuracy"][judge]["rl"], abs=1e-4)

    store, _ = open_study(tmp_path / "eval", tmp_path / "study", None)
    judge = Judge(from_dict(JudgeConfig, document["judges"]["tiny"]["config"]))
    with StudyServer(store, quiet=True) as server:
        result = simulate(server.url, judge, store.block_size(), concurrency=4)
    judge.close()
    answers = store.answers()
    assert result["answers"] == len(answers) == len(store.items) * len(store.conditions)
    assert {a["agent"] for a in answers} == {"judge:tiny"}
    by_item = {it["id"]: it for it in document["items"]}
    for row in ("random", "pretrained", "rl/0", "oracle"):  # the prior is all ties: its picks are coin flips
        cells = [a for a in answers if a["condition"] == row]
        eval_accuracy = sum(expected_accuracy(by_item[a["item"]]["judged"]["tiny"][row]["scores"],
                                              by_item[a["item"]]["answer"]) for a in cells) / len(cells)
        assert sum(a["correct"] for a in cells) / len(cells) == pytest.approx(eval_accuracy, abs=1e-9), row
    store.close()
