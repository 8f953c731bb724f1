"""`pcdrl eval` on a formula run (policy.kind=formulas) on the tiny pipeline: every row for both judges, the
formulas the judge reads, the label controls, and mixing run kinds."""
import json
import shutil

import pytest
import yaml

from pcdrl.evaluation import eval as eval_module
from pcdrl.evaluation.eval import evaluate
from pcdrl.evaluation.eval_config import EvalConfig
from pcdrl.evaluation.eval_runs import check_comparable, find_run
from pcdrl.evaluation.formula_rows import formula_sets
from pcdrl.explanations import fits, holds, parse, to_text
from pcdrl.runtime.config_loader import load_config
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.rl.trainer import train
from pcdrl.simulators.judge import Judge

ROWS = {"prior", "random", "pretrained", "rl", "oracle"}


@pytest.fixture(scope="module")
def formula_run(pipeline, tmp_path_factory):
    judge = f"{{name: tiny, backend: {{model: {pipeline['model']}}}}}"
    cfg = load_config(RLTrainConfig, None, [
        f"pcd={pipeline['pcd']}", f"data={pipeline['data']}", "families=[continuation]", f"judge={judge}",
        f"heldout_judges=[{{name: tiny2, template: terse, backend: {{model: {pipeline['model']}}}}}]",
        "policy.kind=formulas", "policy.k=2", "grpo.group_size=2", "items_per_step=3", "steps=2",
        "max_train_items=12", "max_eval_items=0", "formula.max_literals=3", "formula.warm_start_steps=10",
        "formula.hidden=16", "evaluate_pretrained=false", "rewards={judge_logprob: 1.0, sparsity: 0.1}",
    ])
    out = tmp_path_factory.mktemp("formula-eval") / "run"
    summary = train(cfg, out)
    return out, summary


def _eval_cfg(*extra):
    return load_config(EvalConfig, None, ["examples=3", "items_per_call=8", "bootstrap_resamples=200", *extra])


class _Spy(Judge):
    """The real judge, keeping every explanation it was shown."""

    shown: list = []

    def answer(self, questions, options, explanations, **kwargs):
        _Spy.shown += list(explanations)
        return super().answer(questions, options, explanations, **kwargs)


def test_formula_eval_scores_every_row_with_true_formulas(pipeline, formula_run, tmp_path, monkeypatch):
    run, trained = formula_run
    monkeypatch.setattr(eval_module, "Judge", _Spy)
    _Spy.shown = []
    summary = evaluate([run], _eval_cfg(), tmp_path / "eval")
    assert list(summary["accuracy"]) == ["tiny", "tiny2"]
    for judge in ("tiny", "tiny2"):
        assert set(summary["accuracy"][judge]) == ROWS
        for row, value in summary["accuracy"][judge].items():
            low, high = summary["ci95"][judge][row]
            assert 0 <= low <= value <= high <= 1
        # The tiny judges are random networks: oracle >= prior does not hold for them (0.20 vs 0.25 here); the PMI
        # prior is chance, as for concept runs.
        assert summary["accuracy"][judge]["prior"] == pytest.approx(summary["chance"], abs=1e-4)
        assert "rl_minus_pretrained" in summary["gain"][judge]
        for control in ("shuffled_labels", "paraphrased_labels"):
            assert set(summary["controls"][control][judge]) >= {"pretrained", "rl", "gain", "gain_ci95"}
    stats = summary["formulas"]
    # With formula.truth=mask the policy writes only true formulas; the warm start's targets are true by build.
    assert stats["truth"] == "mask" and stats["true_share"]["rl"] == stats["true_share"]["pretrained"] == 1.0
    assert all(1 <= stats["mean_size"][row] <= 3 for row in ("pretrained", "rl", "random"))
    assert stats["n_items"] == summary["n_items"] and any("fidelity" in note for note in stats["notes"])
    assert "fidelity" not in summary["controls"], "the fidelity control is skipped for formulas"
    # The same checkpoint, read back: its greedy formulas are those the trainer's summary measured.
    if not stats["skipped_items"]:
        assert stats["mean_size"]["rl"] == pytest.approx(trained["heldout_formulas_rl"]["mean_size"], abs=1e-4)

    # Every explaining row reached the judge as a formula (never as a list of labels) ...
    shown = [e for e in _Spy.shown if e is not None and e.oracle is None]
    assert shown and all(e.formula and not e.labels for e in shown)
    texts = {e.formula for e in shown}
    # ... and the pretrained and rl formulas, printed with the real labels, parse back and are true on their item.
    config = find_run(run)
    items = eval_module._held_out_items(config, _eval_cfg())
    sets = formula_sets([config], items, 0)
    for formulas in (sets.pretrained, sets.rl[0]):
        for f, row in zip(formulas, sets.fired):
            text = to_text(f, sets.labels)
            assert text in texts and parse(text, sets.labels) == f and holds(f, row) and fits(f, config.config.formula)
    real = {to_text(f, sets.labels) for f in [*sets.pretrained, *sets.rl[0], *sets.random]}
    assert texts - real, "the shuffled and paraphrased controls show the same trees with other labels"

    out = tmp_path / "eval"
    examples = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert len(examples) == 3 and set(examples[0]["probs"]["tiny"]) == ROWS
    assert examples[0]["labels"]["rl"] == [examples[0]["formulas"]["rl"]]
    assert "Formulas (truth: mask)" in (out / "table.md").read_text()
    assert "<h2>Formulas</h2>" in (out / "report.html").read_text()


def test_a_formula_run_and_a_concept_run_are_not_mixed(formula_run, tmp_path):
    run, _ = formula_run
    concepts = tmp_path / "concepts"
    shutil.copytree(run, concepts)
    header, body = (concepts / "config.yaml").read_text().split("\n", 1)
    config = yaml.safe_load(body)
    config["policy"]["kind"] = "concepts"
    (concepts / "config.yaml").write_text(header + "\n" + yaml.safe_dump(config))
    message = r"trained concepts \(policy.kind=concepts\) and .* trained formulas; .*separate `pcdrl eval` calls"
    with pytest.raises(ValueError, match=message):
        check_comparable([find_run(run), find_run(concepts)])
    with pytest.raises(ValueError, match=message):
        evaluate([run, concepts], _eval_cfg(), tmp_path / "mixed")
