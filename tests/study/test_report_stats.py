"""pcdrl/study/report_stats.py on small answer sets whose right numbers are counted by hand."""
import numpy as np
import pytest

from pcdrl.study import report_stats as rs


def answer(participant, item, condition, correct, agent="", choice=None, seconds=5.0):
    return {"participant": participant, "agent": agent, "item": item, "condition": condition, "position": 0,
            "choice": (0 if correct else 1) if choice is None else choice, "correct": int(correct),
            "seconds": seconds, "answered_at": 0.0}


def grid(n_people, n_items, rule, conditions=("pretrained", "rl/0")):
    """Every participant answers every item under every condition; `rule(p, i, c)` says whether it is right."""
    return [answer(f"p{p}", f"i{i}", c, rule(p, i, c)) for p in range(n_people) for i in range(n_items)
            for c in conditions]


def group(answers, conditions=("pretrained", "rl/0"), resamples=400, **kw):
    return rs.analyse_group(answers, list(conditions), "oracle", 0.5, resamples, 0, **kw)[0]


def width(ci):
    return ci[1] - ci[0]


def test_accuracy_per_condition_is_counted_exactly():
    rows = [answer("a", "i1", "pretrained", 1, seconds=2), answer("a", "i2", "rl/0", 1, seconds=4),
            answer("b", "i1", "rl/0", 0, seconds=6), answer("b", "i2", "pretrained", 0, seconds=8),
            answer("c", "i3", "pretrained", 1, seconds=10)]
    table = group(rows)["accuracy"]
    assert table["pretrained"]["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert table["rl/0"]["accuracy"] == 0.5
    assert (table["pretrained"]["n_answers"], table["pretrained"]["n_participants"], table["pretrained"]["n_items"]) \
        == (3, 3, 3)
    assert table["pretrained"]["median_seconds"] == 8.0 and table["rl/0"]["median_seconds"] == 5.0


def test_interval_holds_the_mean_and_narrows_with_more_data():
    rule = lambda p, i, c: (p * 7 + i * 3) % 5 < 3  # noqa: E731  a 60% accuracy spread over people and items
    small, large = group(grid(4, 5, rule)), group(grid(40, 50, rule))
    for summary in (small, large):
        row = summary["accuracy"]["pretrained"]
        assert row["ci95"][0] <= row["accuracy"] <= row["ci95"][1]
    assert width(large["accuracy"]["pretrained"]["ci95"]) < width(small["accuracy"]["pretrained"]["ci95"]) / 2


def test_participants_are_resampled():
    # All the spread is between two people (one always right, one always wrong) over many items: resampling
    # answers or items alone would give a tight interval around 0.5; resampling people gives 0 to 1.
    ci = group(grid(2, 60, lambda p, i, c: p == 0))["accuracy"]["pretrained"]["ci95"]
    assert ci[0] <= 0.05 and ci[1] >= 0.95


def test_items_are_resampled():
    # The mirror image: every person gets item 0 right and item 1 wrong.
    ci = group(grid(60, 2, lambda p, i, c: i == 0))["accuracy"]["pretrained"]["ci95"]
    assert ci[0] <= 0.05 and ci[1] >= 0.95


def test_gain_sign_and_paired_interval():
    rule = lambda p, i, c: c == "rl/0" or (i + p) % 2 == 0  # noqa: E731  rl always right, pretrained half
    gain = group(grid(20, 20, rule))["gain"]
    assert gain["difference"] == 0.5 and gain["ci95"][0] > 0.3
    worse = group(grid(20, 20, lambda p, i, c: c == "pretrained"))["gain"]
    assert worse["difference"] == -1.0 and worse["ci95"] == [-1.0, -1.0]


def test_gain_names_are_parameters_and_absent_conditions_give_none():
    rows = grid(3, 3, lambda p, i, c: c == "random", conditions=("random", "prior"))
    assert group(rows, conditions=("random", "prior"))["gain"] is None
    gain = group(rows, conditions=("random", "prior"), rl="random", pretrained="prior")["gain"]
    assert gain["difference"] == 1.0


def test_attention_check_leaves_out_careless_participants():
    rows = [answer("careless", "i1", "oracle", 0), answer("careless", "i2", "oracle", 0),
            answer("careless", "i3", "rl/0", 1),
            answer("borderline", "i1", "oracle", 1), answer("borderline", "i2", "oracle", 0),
            answer("borderline", "i3", "rl/0", 0),
            answer("left_early", "i3", "rl/0", 1)]
    kept, account = rs.attention_filter(rows, "oracle", 0.5, ["rl/0", "oracle"])
    assert {a["participant"] for a in kept} == {"borderline", "left_early"}  # 0.5 is not below 0.5
    assert account["excluded"] == [{"participant": "careless", "attention_accuracy": 0.0, "n_checks": 2}]
    assert account["n_unchecked"] == 1 and account["checked"]
    summary = rs.analyse_group(rows, ["rl/0", "oracle"], "oracle", 0.5, 100, 0)[0]
    assert summary["accuracy"]["rl/0"]["accuracy"] == 0.5 and summary["n_answers_before_checks"] == 7


def test_no_attention_condition_excludes_nobody():
    rows = [answer("a", "i1", "rl/0", 0)]
    kept, account = rs.attention_filter(rows, "oracle", 0.9, ["rl/0", "prior"])
    assert kept == rows and not account["checked"] and "no attention checks" in account["note"]


def test_weighted_pearson_matches_numpy_and_duplication():
    rng = np.random.default_rng(3)
    x, y = rng.random(12), rng.random(12)
    assert rs.weighted_pearson(x, y, np.ones((1, 12)))[0] == pytest.approx(np.corrcoef(x, y)[0, 1])
    counts = rng.integers(0, 3, 12)
    counts[:2] = 1
    repeated = np.repeat(np.arange(12), counts)
    assert rs.weighted_pearson(x, y, counts[None].astype(float))[0] == \
        pytest.approx(np.corrcoef(x[repeated], y[repeated])[0, 1])
    assert np.isnan(rs.weighted_pearson(np.full(5, 0.3), rng.random(5), np.ones((1, 5)))[0])


def test_correlation_on_constructed_cells():
    linear = [{"item": f"i{k}", "condition": "c", "p_true": k / 10, "accuracy": 0.1 + k / 20, "n": 1}
              for k in range(8)]
    result = rs.correlation(linear, 300, 0)
    assert result["r"] == 1.0 and result["ci95"] == [1.0, 1.0] and result["n_cells"] == 8
    flipped = [{**p, "accuracy": 1 - p["accuracy"]} for p in linear]
    assert rs.correlation(flipped, 300, 0)["r"] == -1.0
    assert rs.correlation(linear[:1], 300, 0)["r"] is None


def test_kendall_tau_counts_an_inversion():
    people = {"prior": 0.1, "pretrained": 0.2, "rl/0": 0.3}
    tau, flips = rs.kendall_tau(people, {"prior": 0.1, "pretrained": 0.3, "rl/0": 0.2})
    assert tau == pytest.approx(1 / 3, abs=1e-4)
    assert flips == [{"first_higher": "rl/0", "second_higher": "pretrained"}]
    assert rs.kendall_tau(people, people) == (1.0, [])
    tied, flips = rs.kendall_tau({"a": 0.1, "b": 0.1, "c": 0.3}, {"a": 0.1, "b": 0.2, "c": 0.3})
    assert tied == pytest.approx(2 / np.sqrt(6), abs=1e-4) and flips == []  # tau-b; a tie is no disagreement
    assert rs.kendall_tau({"a": 0.1}, {"a": 0.2})[0] is None


def items_with_judge(n=6):
    """Items whose judge 'j' is right under rl/0, wrong under pretrained, and flat (all tied) under prior."""
    out = {}
    for k in range(n):
        answer_ = k % 3
        right = [0.1, 0.1, 0.1]
        right[answer_] = 0.9
        wrong = [0.2, 0.2, 0.2]
        wrong[(answer_ + 1) % 3] = 0.7
        out[f"i{k}"] = {"id": f"i{k}", "answer": answer_, "options": ["x", "y", "z"], "judged": {"j": {
            "rl/0": {"scores": [2 * p for p in right], "probs": right},
            "pretrained": {"scores": [2 * p for p in wrong], "probs": wrong},
            "prior": {"scores": [0.0, 0.0, 0.0], "probs": [1 / 3] * 3}}}}
    return out


def judge_answer(participant, item, condition, items, pick_tied=0):
    scores = items[item]["judged"]["j"][condition]["scores"]
    top = [i for i, s in enumerate(scores) if s >= max(scores) - 1e-6]
    choice = top[pick_tied % len(top)]
    return answer(participant, item, condition, choice == items[item]["answer"], agent="judge:j", choice=choice)


def test_simulated_argmax_agent_reproduces_the_eval():
    items = items_with_judge()
    rows = [judge_answer(f"s{k % 2}", f"i{k}", c, items, pick_tied=k) for k in range(6)
            for c in ("rl/0", "pretrained", "prior")]
    vs = rs.simulated_vs_eval(rows, items, "j", ["rl/0", "pretrained", "prior"])
    assert vs["rl/0"] == {"simulated_accuracy": 1.0, "eval_accuracy": 1.0, "difference": 0.0, "n_answers": 6,
                          "n_cells": 6, "tied_cells": 0, "top_choice_share": 1.0}
    assert vs["pretrained"]["difference"] == 0.0 and vs["pretrained"]["simulated_accuracy"] == 0.0
    # prior: every option ties, the eval counts 1/3 and the tie-break picks option k % 3, right on every item
    # since the answer is k % 3 too: a difference the tied cells explain.
    assert vs["prior"]["tied_cells"] == 6 and vs["prior"]["eval_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert vs["prior"]["simulated_accuracy"] == 1.0 and vs["prior"]["top_choice_share"] == 1.0
    off = [{**a, "choice": (a["choice"] + 1) % 3} for a in rows if a["condition"] == "rl/0"]
    assert rs.simulated_vs_eval(off, items, "j", ["rl/0"])["rl/0"]["top_choice_share"] == 0.0


def test_agreement_with_a_judge():
    items = items_with_judge(4)
    # people: right on rl/0, wrong on pretrained, and 1 in 2 right on the prior
    rows = [answer(p, f"i{k}", c, c == "rl/0" or (c == "prior" and p == "a"))
            for p in ("a", "b") for k in range(4) for c in ("rl/0", "pretrained", "prior")]
    result = rs.agreement(rows, items, "j", ["rl/0", "pretrained", "prior"],
                          {"rl/0": 1.0, "pretrained": 0.0, "prior": 0.5}, 200, 0)
    # one point per condition, four times over: r of (0.9, 0.2, 1/3) against (1, 0, 0.5)
    expected = np.corrcoef([0.9, 0.2, 1 / 3], [1.0, 0.0, 0.5])[0, 1]
    assert result["n_cells"] == 12 and result["r"] == pytest.approx(expected, abs=1e-4)
    assert result["accuracy"] == {"rl/0": 1.0, "pretrained": 0.0, "prior": pytest.approx(1 / 3, abs=1e-4)}
    assert result["kendall_tau"] == 1.0 and result["disagreements"] == []


def test_summary_without_people_still_reports_simulated_participants():
    items = items_with_judge(3)
    frozen = {"conditions": ["rl/0", "prior"], "items": list(items.values()),
              "judges": {"j": {"role": "training", "config": {}}}}
    rows = [judge_answer("s", f"i{k}", "rl/0", items) for k in range(3)]
    summary = rs.study_summary(rows, [{"agent": "judge:j"}, {"agent": ""}], frozen, "oracle", 0.5, 100, 0)
    assert summary["people"]["n_answers"] == 0 and "No answers from people" in summary["people"]["note"]
    assert summary["people"]["n_started"] == 1 and summary["agreement"] == {}
    assert summary["simulated"]["judge:j"]["vs_eval"]["rl/0"]["difference"] == 0.0
    empty = rs.study_summary([], [], frozen, "oracle", 0.5, 100, 0)
    assert empty["simulated"] == {} and empty["people"]["n_answers"] == 0


def test_display_names():
    assert rs.display_name("prior") == "no explanation (prior)" and rs.display_name("rl/0") == "rl"
    assert rs.display_name("pretrained") == "pretrained"
