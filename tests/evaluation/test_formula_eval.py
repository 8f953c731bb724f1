"""`pcdrl eval` on a formula run (policy.kind=formulas) on the tiny pipeline: every row for both judges, the
formulas the judge reads, the label controls, mixing run kinds, and the concept-set row matched to the formulas'
size (matched_concepts) with its refusals."""
import json
import shutil

import pytest
import torch
import yaml

from pcdrl.evaluation import eval as eval_module
from pcdrl.evaluation.eval import evaluate
from pcdrl.evaluation.eval_config import EvalConfig
from pcdrl.evaluation.eval_runs import check_comparable, find_run
from pcdrl.evaluation.formula_rows import formula_sets
from pcdrl.evaluation.matched_rows import run_difference
from pcdrl.explanations import fits, holds, parse, to_text
from pcdrl.runtime.config_loader import ConfigError, load_config
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.rl.trainer import train
from pcdrl.simulators.judge import Judge
from pcdrl.simulators.metrics import expected_accuracy

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
    assert any("not requested" in note for note in stats["notes"]) and "rl_concepts" not in summary["rows"]
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


# --- the matched concept-set row (matched_concepts) ------------------------------------------


@pytest.fixture(scope="module")
def concept_run(pipeline, tmp_path_factory):
    """A concept-set run on the formula run's PCD, data and families, with k = the formulas' conjunction size."""
    judge = f"{{name: tiny, backend: {{model: {pipeline['model']}}}}}"
    cfg = load_config(RLTrainConfig, None, [
        f"pcd={pipeline['pcd']}", f"data={pipeline['data']}", "families=[continuation]", f"judge={judge}",
        f"heldout_judges=[{{name: tiny2, template: terse, backend: {{model: {pipeline['model']}}}}}]",
        "policy.k=2", "grpo.group_size=2", "items_per_step=3", "steps=2", "max_eval_items=2", "lr=0.05",
        "evaluate_pretrained=false",
    ])
    out = tmp_path_factory.mktemp("matched-concepts") / "run"
    train(cfg, out)
    return out


def _accuracies(items, answers):
    return torch.tensor([expected_accuracy(a["scores"], it["answer"]) for a, it in zip(answers, items)])


def test_matched_concept_row_is_scored_on_the_formula_items_with_its_difference(formula_run, concept_run, tmp_path,
                                                                                monkeypatch):
    run, _ = formula_run
    scored = {}  # (judge, row) -> (items, shown entries, answers), as every row reached the judges

    def recording(judge, judge_cfg, row, items, shown, *args):
        answers = original(judge, judge_cfg, row, items, shown, *args)
        scored[judge_cfg.name, row] = (items, shown.get(row), answers)
        return answers

    original = eval_module.score_row
    monkeypatch.setattr(eval_module, "score_row", recording)
    summary = evaluate([run], _eval_cfg(f"matched_concepts=[{concept_run}]"), tmp_path / "eval")

    assert summary["rows"][summary["rows"].index("rl") + 1] == "rl_concepts"
    stats = summary["formulas"]
    assert stats["matched"]["k"] == stats["mean_size"]["rl_concepts"] == 2
    assert stats["matched"]["rl_mean_size"] == stats["mean_size"]["rl"] and stats["matched"]["seeds_paired"]
    assert not any("not requested" in note for note in stats["notes"])
    assert any(note.startswith("rl_concepts: the greedy top-2") for note in stats["notes"])
    # The concept run's own greedy top-k (as a concept-run eval picks it) on exactly the formula rows' items.
    ref = find_run(concept_run)
    kept = formula_sets([find_run(run)], eval_module._held_out_items(find_run(run), _eval_cfg()), 0).items
    expected = eval_module.concept_sets([ref], kept, 0).rl[0]
    for judge in ("tiny", "tiny2"):
        items, shown, answers = scored[judge, "rl_concepts/0"]
        formula_items, _, rl_answers = scored[judge, "rl/0"]
        assert [it["id"] for it in items] == [it["id"] for it in formula_items] == [it["id"] for it in kept]
        assert [e["concepts"] for e in shown] == expected and all(len(e["labels"]) == 2 and "formula" not in e
                                                                  for e in shown)
        # The row and the difference, from the per-item accuracies the judges gave.
        concepts, rl = _accuracies(items, answers), _accuracies(items, rl_answers)
        low, high = summary["ci95"][judge]["rl_concepts"]
        assert summary["accuracy"][judge]["rl_concepts"] == pytest.approx(concepts.mean().item(), abs=1e-4)
        assert 0 <= low <= summary["accuracy"][judge]["rl_concepts"] <= high <= 1
        difference = summary["formula_vs_concepts"][judge]
        assert difference["rl_minus_rl_concepts"] == pytest.approx((rl - concepts).mean().item(), abs=1e-4)
        low, high = difference["ci95"]
        assert low <= difference["rl_minus_rl_concepts"] <= high and low < high
    table = (tmp_path / "eval" / "table.md").read_text()
    assert "| rl concept set (k=2) |" in table and "| **rl formula − rl concept set (k=2)** |" in table
    assert any("rl − rl concept set (k=2)" in v or "rl concept set (k=2):" in v for v in summary["controls"]["verdicts"])


def test_run_difference_pairs_seeds_or_falls_back_to_item_means():
    two, three = torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    paired, ok = run_difference(two, two.flip(0))
    assert ok and paired.tolist() == [[0.0, -1.0], [0.0, 1.0]], "seed i is paired with seed i"
    broadcast, ok = run_difference(two, three[:1])
    assert ok and broadcast.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    means, ok = run_difference(two, three)
    assert not ok and means.shape == (1, 2) and means[0].tolist() == pytest.approx([2 / 3, 1 / 6])


def _copy_run(run, root, **changes):
    """A copy of a run folder with its config.yaml's top-level fields changed."""
    copy = root / f"copy-{len(list(root.iterdir()))}"
    shutil.copytree(run, copy)
    header, body = (copy / "config.yaml").read_text().split("\n", 1)
    config = yaml.safe_load(body)
    config.update(changes)
    (copy / "config.yaml").write_text(header + "\n" + yaml.safe_dump(config))
    return copy


def test_matched_runs_that_do_not_match_are_refused_naming_the_field(formula_run, concept_run, tmp_path):
    run, _ = formula_run
    refusals = {
        "formula": ([run], r"matched_concepts: .* trained formulas \(policy.kind=formulas\); the matched row needs a "
                           r"concept-set run"),
        "data": ([_copy_run(concept_run, tmp_path, data=str(tmp_path / "other-data"))],
                 r"matched_concepts: .*copy-0 was trained with data=.*other-data, the formula run .* train the concept "
                 r"run with data="),
        "pcd": ([_copy_run(concept_run, tmp_path, pcd=str(tmp_path / "other-pcd"))],
                r"matched_concepts: .* was trained with pcd=.*other-pcd"),
        "families": ([_copy_run(concept_run, tmp_path, families=["attributes"])],
                     r"matched_concepts: .* was trained with families=\['attributes'\]"),
        "twice": ([concept_run, f"{concept_run}/"], r"matched_concepts: .* are checkpoints of one run"),
        "not a run": ([tmp_path / "nothing"], r"matched_concepts: .*nothing does not exist"),
    }
    for what, (paths, message) in refusals.items():
        out = tmp_path / f"eval-{what.replace(' ', '-')}"
        with pytest.raises(ValueError, match=message):
            evaluate([run], _eval_cfg(f"matched_concepts=[{','.join(map(str, paths))}]"), out)
        assert not out.exists(), f"{what}: refused before anything is written or loaded"
    with pytest.raises(ValueError, match=r"matched_concepts: .* trained concepts \(policy.kind=concepts\); the matched "
                                         r"concept-set row is for formula runs"):
        evaluate([concept_run], _eval_cfg(f"matched_concepts=[{concept_run}]"), tmp_path / "eval-concepts")
    with pytest.raises(ConfigError, match=r"matched_concepts: .* keep rl in `rows`"):
        _eval_cfg(f"matched_concepts=[{concept_run}]", "rows=[prior,pretrained]", "controls=[]")
