"""The numbers of `pcdrl study report`: pure functions of the stored answers and the frozen item set (no I/O).

An answer is a dict as `StudyStore.answers()` returns it (participant, agent, item, condition, choice, correct,
seconds, ...). People (agent '') and each simulated agent ('judge:NAME') are analysed separately.

Intervals are 95% percentile bootstraps, seeded. Accuracy resamples participants AND items (crossed): a person's
accuracy depends on who answered and on which questions they drew, and both vary between studies. Numbers that
are undefined (no answers, a flat correlation) are None, so summary.json stays strict JSON.
"""
from __future__ import annotations

import statistics
from collections import defaultdict

import numpy as np

from pcdrl.simulators.metrics import expected_accuracy, top_options

PEOPLE = ""
"""The agent of an answer given by a person."""
JUDGE_AGENT = "judge:"
"""Simulated participants are stored with agent 'judge:NAME', NAME a judge of the eval."""
DIGITS = 4
CHUNK = 250
"""Resamples drawn at most at once; fewer with many answers (WEIGHTS_AT_ONCE bounds the weight matrix)."""
WEIGHTS_AT_ONCE = 4_000_000
DISPLAY = {"prior": "no explanation (prior)", "rl/0": "rl", "rl_concepts/0": "rl concept set"}


def display_name(condition: str) -> str:
    return DISPLAY.get(condition, condition)


def number(value) -> float | None:
    """Rounded, or None for a missing / NaN / infinite value."""
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), DIGITS)


def interval(draws: np.ndarray) -> list | None:
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return None
    return [number(np.quantile(draws, 0.025)), number(np.quantile(draws, 0.975))]


def by_agent(answers: list[dict]) -> dict[str, list[dict]]:
    """Answers grouped by agent; people ('') first, then the simulated agents by name."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for answer in answers:
        groups[answer["agent"]].append(answer)
    return {agent: groups[agent] for agent in sorted(groups)}


def _positions(keys: list[str], ordered: list[str]) -> np.ndarray:
    where = {key: n for n, key in enumerate(ordered)}
    return np.array([where[key] for key in keys], dtype=int)


# --- attention checks ----------------------------------------------------------------------------------


def attention_filter(answers: list[dict], condition: str, min_accuracy: float,
                     conditions: list[str]) -> tuple[list[dict], dict]:
    """Leave out participants whose accuracy on `condition` items is below `min_accuracy`.

    A participant with no attention item answered yet (one who left early) is kept: there is no evidence
    against them; they are counted as `unchecked`. Returns the kept answers and a JSON-able account."""
    if condition not in conditions:
        return list(answers), {"checked": False, "condition": condition, "min_accuracy": min_accuracy,
                               "excluded": [], "n_unchecked": 0,
                               "note": f"no attention checks: the condition {condition!r} is not shown in this study"}
    hits: dict[str, list[int]] = defaultdict(list)
    for answer in answers:
        if answer["condition"] == condition:
            hits[answer["participant"]].append(answer["correct"])
    excluded = {p: sum(h) / len(h) for p, h in hits.items() if sum(h) / len(h) < min_accuracy}
    everyone = {a["participant"] for a in answers}
    kept = [a for a in answers if a["participant"] not in excluded]
    account = {"checked": True, "condition": condition, "min_accuracy": min_accuracy,
               "excluded": [{"participant": p, "attention_accuracy": number(acc), "n_checks": len(hits[p])}
                            for p, acc in sorted(excluded.items())],
               "n_unchecked": len(everyone - set(hits))}
    account["note"] = (f"{len(excluded)} of {len(everyone)} participant(s) left out: below {min_accuracy:g} "
                       f"accuracy on the {display_name(condition)} items (attention checks)")
    return kept, account


# --- accuracy per condition, crossed bootstrap ----------------------------------------------------------


def crossed_draws(answers: list[dict], conditions: list[str], resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Per condition, `resamples` bootstrap accuracies. Each resample draws participants and items independently
    with replacement; an answer weighs (its participant's count) x (its item's count), and a condition's accuracy
    is the weighted mean of `correct`. NaN where a resample drew no answer of that condition. Every condition
    shares the same resamples, so differences between conditions can be taken within a resample."""
    if not answers:
        return {c: np.full(resamples, np.nan) for c in conditions}
    people = sorted({a["participant"] for a in answers})
    items = sorted({a["item"] for a in answers})
    p_index = _positions([a["participant"] for a in answers], people)
    i_index = _positions([a["item"] for a in answers], items)
    correct = np.array([float(a["correct"]) for a in answers])
    masks = {c: np.array([a["condition"] == c for a in answers]) for c in conditions}
    rng = np.random.default_rng(seed)
    out = {c: [] for c in conditions}
    chunk = max(1, min(CHUNK, WEIGHTS_AT_ONCE // len(answers)))
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        p_count = rng.multinomial(len(people), np.full(len(people), 1 / len(people)), size=n)
        i_count = rng.multinomial(len(items), np.full(len(items), 1 / len(items)), size=n)
        weights = (p_count[:, p_index] * i_count[:, i_index]).astype(float)
        for c, mask in masks.items():
            total = weights[:, mask].sum(1)
            hit = weights[:, mask] @ correct[mask]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[c].append(np.where(total > 0, hit / np.where(total > 0, total, 1), np.nan))
    return {c: np.concatenate(v) for c, v in out.items()}


def accuracy_by_condition(answers: list[dict], conditions: list[str], draws: dict[str, np.ndarray]) -> dict:
    """Accuracy [95% CI] per condition, with the counts behind it and the median seconds per answer."""
    table = {}
    for c in conditions:
        rows = [a for a in answers if a["condition"] == c]
        table[c] = {
            "accuracy": number(sum(a["correct"] for a in rows) / len(rows)) if rows else None,
            "ci95": interval(draws[c]) if rows else None,
            "n_answers": len(rows), "n_participants": len({a["participant"] for a in rows}),
            "n_items": len({a["item"] for a in rows}),
            "median_seconds": number(statistics.median(a["seconds"] for a in rows)) if rows else None}
    return table


def gain(table: dict, draws: dict[str, np.ndarray], rl: str = "rl/0", pretrained: str = "pretrained") -> dict | None:
    """rl - pretrained accuracy, its CI from the differences within each shared resample; None if either is absent."""
    if rl not in table or pretrained not in table or table[rl]["accuracy"] is None \
            or table[pretrained]["accuracy"] is None:
        return None
    return {"rl": rl, "pretrained": pretrained,
            "difference": number(table[rl]["accuracy"] - table[pretrained]["accuracy"]),
            "ci95": interval(draws[rl] - draws[pretrained])}


def analyse_group(answers: list[dict], conditions: list[str], attention_condition: str, min_accuracy: float,
                  resamples: int, seed: int, rl: str = "rl/0", pretrained: str = "pretrained") -> tuple[dict, list]:
    """One group's (people's, or one agent's) summary after its attention checks, and the answers it kept."""
    kept, attention = attention_filter(answers, attention_condition, min_accuracy, conditions)
    draws = crossed_draws(kept, conditions, resamples, seed)
    table = accuracy_by_condition(kept, conditions, draws)
    return {"n_answers": len(kept), "n_participants": len({a["participant"] for a in kept}),
            "n_answers_before_checks": len(answers), "attention": attention, "accuracy": table,
            "gain": gain(table, draws, rl, pretrained)}, kept


# --- people against the judges -------------------------------------------------------------------------


def cell_points(answers: list[dict], items_by_id: dict, judge: str) -> list[dict]:
    """Per (item, condition) cell answered, which the judge scored: the judge's probability of the true option,
    its expected accuracy, and the answers' mean accuracy."""
    cells: dict[tuple[str, str], list[int]] = defaultdict(list)
    for a in answers:
        cells[(a["item"], a["condition"])].append(a["correct"])
    points = []
    for (item_id, condition), hits in sorted(cells.items()):
        item = items_by_id.get(item_id)
        judged = ((item or {}).get("judged") or {}).get(judge, {}).get(condition)
        if not judged:
            continue
        points.append({"item": item_id, "condition": condition, "n": len(hits), "accuracy": sum(hits) / len(hits),
                       "p_true": float(judged["probs"][item["answer"]]),
                       "judge_accuracy": expected_accuracy(judged["scores"], item["answer"])})
    return points


def weighted_pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson r of x and y under each row of `weights` [resamples, points]; NaN where x or y is flat."""
    total = weights.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x - (weights * x).sum(1, keepdims=True) / total
        dy = y - (weights * y).sum(1, keepdims=True) / total
        vx, vy = (weights * dx * dx).sum(1) / total[:, 0], (weights * dy * dy).sum(1) / total[:, 0]
        r = (weights * dx * dy).sum(1) / total[:, 0] / np.sqrt(vx * vy)
    return np.where((vx > 1e-12) & (vy > 1e-12), np.clip(r, -1.0, 1.0), np.nan)


def correlation(points: list[dict], resamples: int, seed: int) -> dict:
    """r between the judge's p(true option) and people's cell accuracy; the CI resamples items (with their cells)."""
    if len(points) < 2:
        return {"r": None, "ci95": None, "n_cells": len(points)}
    x = np.array([p["p_true"] for p in points])
    y = np.array([p["accuracy"] for p in points])
    items = sorted({p["item"] for p in points})
    index = _positions([p["item"] for p in points], items)
    r = weighted_pearson(x, y, np.ones((1, len(points))))[0]
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, resamples, CHUNK):
        n = min(CHUNK, resamples - start)
        counts = rng.multinomial(len(items), np.full(len(items), 1 / len(items)), size=n)
        draws.append(weighted_pearson(x, y, counts[:, index].astype(float)))
    return {"r": number(r), "ci95": interval(np.concatenate(draws)), "n_cells": len(points), "n_items": len(items)}


def kendall_tau(first: dict[str, float], second: dict[str, float]) -> tuple[float | None, list[dict]]:
    """Kendall's tau-b between two scorings of the same conditions, and the pairs they order oppositely
    (a tie on one side is not a disagreement). None with fewer than two conditions or no order on a side."""
    names = [c for c in first if c in second and first[c] is not None and second[c] is not None]
    concordant = discordant = ties_first = ties_second = 0
    flips = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            s1, s2 = np.sign(first[a] - first[b]), np.sign(second[a] - second[b])
            ties_first += s1 == 0
            ties_second += s2 == 0
            if s1 * s2 > 0:
                concordant += 1
            elif s1 * s2 < 0:
                discordant += 1
                hi, lo = (a, b) if s1 > 0 else (b, a)
                flips.append({"first_higher": hi, "second_higher": lo})
    pairs = len(names) * (len(names) - 1) // 2
    denominator = ((pairs - ties_first) * (pairs - ties_second)) ** 0.5
    return (number((concordant - discordant) / denominator) if denominator > 0 else None), flips


def answer_weighted(points: list[dict], key: str, conditions: list[str]) -> dict[str, float | None]:
    """Per condition, the mean of `key` over the cells weighted by their answers: the mean over the answers."""
    out = {}
    for c in conditions:
        cells = [p for p in points if p["condition"] == c]
        n = sum(p["n"] for p in cells)
        out[c] = number(sum(p[key] * p["n"] for p in cells) / n) if n else None
    return out


def agreement(answers: list[dict], items_by_id: dict, judge: str, conditions: list[str],
              people_accuracy: dict[str, float | None], resamples: int, seed: int) -> dict:
    """How well one judge stands in for people on the cells people answered: r of p(true option) against the
    people's cell accuracy, the judge's accuracy on those answers, and whether it ranks the conditions alike."""
    points = cell_points(answers, items_by_id, judge)
    judge_accuracy = answer_weighted(points, "judge_accuracy", conditions)
    tau, flips = kendall_tau(people_accuracy, judge_accuracy)
    return {**correlation(points, resamples, seed), "accuracy": judge_accuracy, "kendall_tau": tau,
            "disagreements": [{"people_higher": f["first_higher"], "judge_higher": f["second_higher"]}
                              for f in flips]}


# --- simulated participants against the eval ------------------------------------------------------------


def judge_of(agent: str, judges: dict) -> str | None:
    """The judge a simulated agent ('judge:NAME') plays, if it is one of the eval's judges."""
    name = agent.removeprefix(JUDGE_AGENT) if agent.startswith(JUDGE_AGENT) else None
    return name if name in judges else None


def simulated_vs_eval(answers: list[dict], items_by_id: dict, judge: str, conditions: list[str]) -> dict:
    """Per condition: the simulated participants' accuracy and `pcdrl eval`'s accuracy for that judge on the same
    answers (expected accuracy of its scores, averaged over the answers: over the answered cells when each is
    answered once). They match but for ties at the top (a random tie-break), counted in `tied_cells`;
    `top_choice_share` is the share of choices among the judge's top-scoring options (1.0 when the agent is that
    judge)."""
    out = {}
    for c in conditions:
        rows, tied, expected, top = [], set(), [], []
        for a in answers:
            item = items_by_id.get(a["item"])
            judged = ((item or {}).get("judged") or {}).get(judge, {}).get(c) if a["condition"] == c else None
            if not judged:
                continue
            scores = judged["scores"]
            best = top_options(scores)
            rows.append(a)
            expected.append(expected_accuracy(scores, item["answer"]))
            top.append(a["choice"] in best)
            if len(best) > 1:
                tied.add(a["item"])
        if not rows:
            continue
        simulated, eval_accuracy = sum(a["correct"] for a in rows) / len(rows), sum(expected) / len(expected)
        out[c] = {"simulated_accuracy": number(simulated), "eval_accuracy": number(eval_accuracy),
                  "difference": number(simulated - eval_accuracy), "n_answers": len(rows),
                  "n_cells": len({a["item"] for a in rows}), "tied_cells": len(tied),
                  "top_choice_share": number(sum(top) / len(top))}
    return out


# --- the whole summary ----------------------------------------------------------------------------------


def study_summary(answers: list[dict], participants: list[dict], frozen: dict, attention_condition: str,
                  attention_min_accuracy: float, resamples: int = 2000, seed: int = 0,
                  rl: str = "rl/0", pretrained: str = "pretrained") -> dict:
    """summary.json of `pcdrl study report`: people first (accuracy per condition, the RL gain, agreement with each
    judge), then each simulated agent (the same numbers, and its match with `pcdrl eval` on the same cells)."""
    conditions = list(frozen["conditions"])
    items_by_id = {item["id"]: item for item in frozen["items"]}
    judges = frozen.get("judges") or {}
    groups = by_agent(answers)
    started: dict[str, int] = defaultdict(int)
    for p in participants:
        started[p["agent"]] += 1
    analyse = dict(conditions=conditions, attention_condition=attention_condition,
                   min_accuracy=attention_min_accuracy, resamples=resamples, seed=seed, rl=rl, pretrained=pretrained)
    people_answers = groups.pop(PEOPLE, [])
    agreements = {}
    if people_answers:
        people, kept = analyse_group(people_answers, **analyse)
        people_accuracy = {c: row["accuracy"] for c, row in people["accuracy"].items()}
        agreements = {j: agreement(kept, items_by_id, j, conditions, people_accuracy, resamples, seed) for j in judges}
    else:
        people = {"n_answers": 0, "n_participants": 0,
                  "note": "No answers from people yet: nothing to report for people"
                          + (" (the simulated participants are reported below)." if groups else ".")}
    people["n_started"] = started[PEOPLE]
    simulated = {}
    for agent, rows in groups.items():
        group, _ = analyse_group(rows, **analyse)
        judge = judge_of(agent, judges)
        # Against the eval every answer counts: the check is of the pipeline, not of the participant.
        simulated[agent] = {**group, "n_started": started[agent], "judge": judge,
                            "vs_eval": simulated_vs_eval(rows, items_by_id, judge, conditions) if judge else None}
    return {"format": "pcdrl-study-report/1", "conditions": conditions,
            "display_names": {c: display_name(c) for c in conditions},
            "judges": {j: (info or {}).get("role", "") for j, info in judges.items()},
            "n_items": len(items_by_id), "resamples": resamples, "seed": seed,
            "people": people, "agreement": agreements, "simulated": simulated}
