"""The evidence under each formula of a formula eval: the pure function on hand-built pre-activations, and
`pcdrl eval` of a tiny formula run writing evidence that the encoder confirms, position by position."""
import json
from types import SimpleNamespace

import pytest
import torch

from pcdrl.behaviors import encoded as encoded_module
from pcdrl.behaviors.build import load_items
from pcdrl.behaviors.encoded import encode_items, load_labelled_pcd
from pcdrl.evaluation.eval import evaluate
from pcdrl.evaluation.eval_config import EvalConfig
from pcdrl.evaluation.eval_runs import find_run
from pcdrl.evaluation.formula_evidence import formula_evidence, row_formulas
from pcdrl.explanations import holds, parse
from pcdrl.explanations.truth import fired
from pcdrl.runtime.config_loader import load_config
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.rl.trainer import train

LABELS = {0: "the", 1: "LORD", 2: "numbers", 3: "Python", 4: "commas", 5: "<script>x</script>"}
POSITIONS = list(range(10, 17))
TOKENS = {p: f" tok{p}" for p in POSITIONS}


def _pre_acts() -> torch.Tensor:
    """Seven read positions (tokens 10..16), six concepts, k = 2: c0 and c4 lead everywhere, except at rows 2 and 5
    (tokens 12 and 15) where c3 jumps to the top. c1 is third at best (3.9 at token 14), never in the top-2."""
    pre = torch.tensor([[5.0, 3.0, 0.0, 1.0, 4.0, -1.0]]).repeat(7, 1)
    pre[[2, 5], 3] = 6.0
    pre[4, 1] = 3.9
    return pre


def test_a_literal_in_the_top_k_lists_exactly_its_positions_and_a_true_not_lists_none():
    found = formula_evidence(parse("c3 AND NOT c1"), _pre_acts(), 2, POSITIONS, TOKENS, LABELS)
    assert found["true"] is True and found["k"] == 2 and found["n_positions"] == 7
    assert found["formula"] == "c3 AND NOT c1" and found["text"] == "'Python' AND NOT 'LORD'"
    python, lord = found["literals"]
    assert python == {"concept": 3, "label": "Python", "negated": False, "fired": True, "true": True,
                      "positions": [{"position": 12, "token": " tok12", "value": 6.0, "rank": 1},
                                    {"position": 15, "token": " tok15", "value": 6.0, "rank": 1}],
                      "closest": {"position": 12, "token": " tok12", "value": 6.0, "rank": 1}}
    assert (lord["negated"], lord["fired"], lord["true"], lord["positions"]) == (True, False, True, [])
    assert lord["closest"] == {"position": 14, "token": " tok14", "value": 3.9, "rank": 3}
    json.dumps(found)  # examples.jsonl holds it as is


def test_a_false_literal_shows_up_false_with_what_makes_it_so():
    found = formula_evidence(parse("c3 OR c2 OR NOT c0"), _pre_acts(), 2, POSITIONS, TOKENS, LABELS)
    assert found["true"] is True  # c3 carries the OR
    lines = {(x["concept"], x["negated"]): x for x in found["literals"]}
    assert lines[(2, False)]["true"] is False and lines[(2, False)]["positions"] == []
    assert lines[(0, True)]["true"] is False  # NOT c0, but c0 was selected at every read position:
    assert [x["position"] for x in lines[(0, True)]["positions"]] == POSITIONS
    # One line per literal, as the formula names them; the same concept under both signs gets two lines.
    both = formula_evidence(parse("c3 OR NOT c3"), _pre_acts(), 2, POSITIONS, TOKENS, LABELS)
    assert [(x["concept"], x["negated"], x["true"]) for x in both["literals"]] == [(3, False, True), (3, True, False)]


def test_rows_are_named_as_examples_name_them():
    sets = SimpleNamespace(pretrained=["p"], rl=[["a"], ["b"], ["c"]])
    assert row_formulas(sets) == {"pretrained": ["p"], "rl": ["a"], "rl/1": ["b"], "rl/2": ["c"]}


# --- the eval of a tiny formula run ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def formula_run(pipeline, tmp_path_factory):
    judge = f"{{name: tiny, backend: {{model: {pipeline['model']}}}}}"
    cfg = load_config(RLTrainConfig, None, [
        f"pcd={pipeline['pcd']}", f"data={pipeline['data']}", "families=[continuation]", f"judge={judge}",
        "policy.kind=formulas", "policy.k=2", "grpo.group_size=2", "items_per_step=3", "steps=1",
        "max_train_items=6", "max_eval_items=0", "formula.max_literals=3", "formula.warm_start_steps=5",
        "formula.hidden=16", "evaluate_pretrained=false", "rewards={judge_logprob: 1.0, sparsity: 0.1}",
    ])
    out = tmp_path_factory.mktemp("formula-evidence") / "run"
    train(cfg, out)
    return out


def test_eval_writes_evidence_the_encoder_confirms(pipeline, formula_run, tmp_path, monkeypatch):
    reads = []
    real_read = encoded_module.read_item_activations
    monkeypatch.setattr(encoded_module, "read_item_activations", lambda *a, **k: reads.append(1) or real_read(*a, **k))
    cfg = load_config(EvalConfig, None, ["examples=4", "items_per_call=8", "bootstrap_resamples=100",
                                         "controls=[]"])
    evaluate([formula_run], cfg, tmp_path / "eval")
    assert len(reads) == 1, "the evidence reuses the activations formula_sets read: S runs once"
    monkeypatch.undo()

    examples = [json.loads(line) for line in (tmp_path / "eval" / "examples.jsonl").read_text().splitlines()]
    assert len(examples) == 4
    # Recompute from the encoder, independently of the eval: S's activations, the encoder's top-k per position.
    run = find_run(formula_run)
    labelled = load_labelled_pcd(run.config.pcd)
    encoder, tokenizer = labelled.pcd.encoder, labelled.pcd.tokenizer
    by_id = {it["id"]: it for it in load_items(run.config.data, split=cfg.split)}
    items = [by_id[e["id"]] for e in examples]
    acts = encode_items(labelled, items).activations
    for example, item, a in zip(examples, items, acts):
        assert set(example["evidence"]) == {"pretrained", "rl"}
        with torch.no_grad():
            out = encoder(a.to(encoder.W_enc.weight.device))
        top = out.top_indices
        positions = item["read_positions"]
        for row, found in example["evidence"].items():
            assert found["text"] == example["formulas"][row] and found["k"] == encoder.k
            assert found["n_positions"] == len(positions)
            f = parse(found["formula"])
            assert found["true"] == bool(holds(f, fired(top, encoder.n_concepts))) is True
            for line in found["literals"]:
                c = line["concept"]
                where = [positions[r] for r in range(len(positions)) if c in top[r].tolist()]
                assert [x["position"] for x in line["positions"]] == where
                assert line["fired"] == bool(where) and line["true"] == (bool(where) != line["negated"])
                assert line["label"] == labelled.labels[c]
                for x in line["positions"]:
                    r = positions.index(x["position"])
                    assert x["token"] == tokenizer.decode([item["input_ids"][x["position"]]])
                    assert x["value"] == pytest.approx(float(out.pre_acts[r, c]), abs=1e-4) and x["rank"] <= encoder.k
                best = line["closest"]
                assert best["rank"] == 1 + int((out.pre_acts[positions.index(best["position"])] >
                                                out.pre_acts[positions.index(best["position"]), c]).sum())
    html = (tmp_path / "eval" / "report.html").read_text()
    assert html.count('<div class="evidence">') == 2 * len(examples)
    first = examples[0]["evidence"]["rl"]["literals"][0]
    assert f"(c{first['concept']})" in html
