"""`pcdrl study report` end to end on a real study database: the files, the numbers against a hand count, the
escaping of hostile text, and a study whose eval folder is gone."""
import json
import re

import pytest

from pcdrl.study.config import StudyConfig
from pcdrl.study.items import ITEMS_FORMAT, study_items
from pcdrl.study.report import study_table, write_study_report
from pcdrl.study.store import StudyStore

XSS = "<script>alert(1)</script>"
ROWS = ["prior", "pretrained", "rl/0", "oracle"]
N_ITEMS = 8


def judged(answer: int, right: bool) -> dict:
    """A judge's scores: a clear pick, the true option if `right`, else the next one."""
    scores = [0.0, 0.0, 0.0]
    scores[answer if right else (answer + 1) % 3] = 1.0
    return {"scores": scores, "probs": [0.8 if s else 0.1 for s in scores]}


def document() -> dict:
    """An items.json as `pcdrl eval` writes it: judge 'smollm2' is right under rl/0 and oracle, wrong under
    pretrained, flat under the prior; 'gemma' is right under pretrained only on even items."""
    items = []
    for k in range(N_ITEMS):
        answer = k % 3
        flat = {"scores": [0.0, 0.0, 0.0], "probs": [1 / 3] * 3}
        items.append({
            "id": f"item{k}", "family": "continuation", "question": f"What comes next? {k}",
            "options": [XSS if k == 0 else f"opt {k}-{n}" for n in range(3)], "answer": answer,
            "behaviour": "x", "text": "y",
            "shown": {"prior": {"kind": "none"}, "pretrained": {"kind": "labels", "labels": [XSS]},
                      "rl/0": {"kind": "labels", "labels": ["years"]}, "oracle": {"kind": "oracle", "oracle": "x"}},
            "judged": {"smollm2": {"prior": flat, "pretrained": judged(answer, False), "rl/0": judged(answer, True),
                                   "oracle": judged(answer, True)},
                       "gemma": {"prior": flat, "pretrained": judged(answer, k % 2 == 0),
                                 "rl/0": judged(answer, False), "oracle": judged(answer, True)}}})
    return {"format": ITEMS_FORMAT, "rows": ROWS, "items": items, "eval": {},
            "judges": {"smollm2": {"role": "training", "config": {}}, "gemma": {"role": "held-out", "config": {}}}}


def person_choice(item: dict, condition: str) -> int:
    """People: right under rl/0 and oracle, wrong under the prior, right under pretrained on even items."""
    k, answer = int(item["id"].removeprefix("item")), item["answer"]
    right = condition in ("rl/0", "oracle") or (condition == "pretrained" and k % 2 == 0)
    return answer if right else (answer + 1) % 3


def run_participant(store, agent, choose) -> list[tuple]:
    participant, log = store.new_participant(agent), []
    while (step := store.next_step(participant)) is not None:
        choice = choose(step.item, step.condition)
        assert store.record(participant, step, choice)
        log.append((participant, step.item["id"], step.condition, int(choice == step.item["answer"])))
    return log


def make_study(tmp_path, eval_dir, people=8, simulated=True, title="Study " + XSS):
    cfg = StudyConfig(items_per_participant=4, seed=1, title=title)
    store = StudyStore.create(tmp_path / "study", cfg, study_items(document(), cfg), str(eval_dir), "0" * 64)
    log = [row for _ in range(people) for row in run_participant(store, "", person_choice)]
    careless = run_participant(store, "", lambda item, c: (item["answer"] + 1) % 3)  # fails the oracle check
    if simulated:  # a full block: every (item, condition) once, choosing the judge's pick (option 0 on a tie)
        for _ in range(store.block_size()):
            run_participant(store, "judge:smollm2", lambda item, c: max(
                range(3), key=lambda i: (item["judged"]["smollm2"][c]["scores"][i], -i)))
    store.close()
    return tmp_path / "study", log, careless[0][0]


def write_eval(folder):
    folder.mkdir()
    summary = {"judges": {"smollm2": {"model": "m", "role": "training"}}, "rows": ["prior", "rl"],
               "accuracy": {"smollm2": {"prior": 0.25, "rl": 0.5}}, "ci95": {"smollm2": {"prior": [0.2, 0.3],
                                                                                         "rl": [0.4, 0.6]}},
               "n_items": N_ITEMS, "chance": 0.33}
    (folder / "summary.json").write_text(json.dumps(summary))
    example = {"id": "item0", "question": "q", "options": [XSS, "b"], "answer": 0, "text": "t", "behaviour": "b",
               "labels": {"pretrained": [XSS], "rl": ["fine"]}, "probs": {"smollm2": {"rl": [0.6, 0.4]}}}
    (folder / "examples.jsonl").write_text(json.dumps(example) + "\n")
    return folder


def test_report_files_and_numbers(tmp_path):
    eval_dir = write_eval(tmp_path / "eval")
    before = sorted(p.name for p in eval_dir.rglob("*"))
    study, log, careless = make_study(tmp_path, eval_dir)
    summary = write_study_report(study, resamples=300, seed=0)
    out = study / "report"
    for name in ("summary.json", "table.md", "report.html", "plots/accuracy.png", "plots/agreement.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in eval_dir.rglob("*")) == before  # the eval folder is only read
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))

    people = summary["people"]
    assert people["attention"]["excluded"][0]["participant"] == careless and people["n_participants"] == 8
    for condition in ROWS:
        hits = [right for _, _, c, right in log if c == condition]
        row = people["accuracy"][condition]
        assert row["n_answers"] == len(hits) and row["accuracy"] == pytest.approx(sum(hits) / len(hits), abs=1e-4)
        assert row["ci95"][0] <= row["accuracy"] <= row["ci95"][1]
    pretrained = [right for _, _, c, right in log if c == "pretrained"]
    assert people["gain"]["difference"] == pytest.approx(1 - sum(pretrained) / len(pretrained), abs=1e-4)

    cells = {(item, c) for _, item, c, _ in log}
    smollm2, gemma = summary["agreement"]["smollm2"], summary["agreement"]["gemma"]
    assert smollm2["n_cells"] == len(cells)
    assert smollm2["accuracy"]["pretrained"] == 0.0 and smollm2["accuracy"]["rl/0"] == 1.0
    # people: rl/0 = oracle > pretrained > prior; gemma puts pretrained above rl/0 (which it always gets wrong)
    assert {"people_higher": "rl/0", "judge_higher": "pretrained"} in gemma["disagreements"]
    assert smollm2["disagreements"] == [{"people_higher": "pretrained", "judge_higher": "prior"}]

    vs = summary["simulated"]["judge:smollm2"]["vs_eval"]
    assert {c: vs[c]["difference"] for c in ("pretrained", "rl/0", "oracle")} == \
        {"pretrained": 0.0, "rl/0": 0.0, "oracle": 0.0}
    assert vs["prior"]["tied_cells"] == N_ITEMS and vs["prior"]["n_cells"] == N_ITEMS  # a full block: every cell
    assert all(row["top_choice_share"] == 1.0 for row in vs.values())
    # option 0 on every tie: right on the items whose answer is 0, i.e. k % 3 == 0
    assert vs["prior"]["simulated_accuracy"] == pytest.approx(3 / N_ITEMS, abs=1e-4)

    page = (out / "report.html").read_text()
    assert XSS not in page and "&lt;script&gt;" in page
    assert "Human study" in page and "PCD-RL evaluation" in page  # the study first, then the eval's own report
    assert page.index("Human study") < page.index("PCD-RL evaluation")
    table = (out / "table.md").read_text()
    assert table == study_table(summary) + "\n" and "| no explanation (prior) |" in table


def test_report_when_the_eval_folder_is_gone(tmp_path):
    study, _, _ = make_study(tmp_path, tmp_path / "deleted-eval", people=2, simulated=False)
    summary = write_study_report(study, resamples=100)
    page = (study / "report" / "report.html").read_text()
    assert "is gone" in page and "PCD-RL evaluation" not in page
    assert summary["study"]["eval_found"] is False and summary["people"]["n_participants"] == 2


def test_report_with_only_simulated_participants(tmp_path):
    study2 = tmp_path / "sim"
    cfg = StudyConfig(items_per_participant=4, seed=1)
    store = StudyStore.create(study2, cfg, study_items(document(), cfg), str(tmp_path / "none"), "0" * 64)
    run_participant(store, "judge:gemma", lambda item, c: 0)
    hostile = "judge:" + XSS + " | x"  # the agent comes from a web form: not a judge, and escaped everywhere
    run_participant(store, hostile, lambda item, c: 0)
    store.close()
    summary = write_study_report(study2, resamples=100)
    assert summary["people"]["n_answers"] == 0 and "judge:gemma" in summary["simulated"]
    assert summary["simulated"][hostile]["vs_eval"] is None and summary["simulated"][hostile]["judge"] is None
    assert XSS not in (study2 / "report" / "report.html").read_text()
    rows = [line for line in (study2 / "report" / "table.md").read_text().splitlines() if line.startswith("| judge:")]
    assert rows and all(len(re.split(r"(?<!\\)\|", line)) == 10 for line in rows)  # 8 columns: pipes escaped
    assert not (study2 / "report" / "plots" / "accuracy.png").exists()
    assert "No answers from people yet" in (study2 / "report" / "table.md").read_text()
    assert "judge:gemma" in (study2 / "report" / "report.html").read_text()
