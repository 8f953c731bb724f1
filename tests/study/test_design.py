"""The study design: balanced conditions within each participant, every (item, condition) once per block."""
from collections import Counter

import pytest

from pcdrl.study import design

CONDITIONS = ["prior", "random", "pretrained", "rl/0", "oracle"]


@pytest.mark.parametrize("n_items,per", [(12, 5), (23, 5), (554, 20), (5, 5), (7, 10)])
def test_a_block_covers_every_item_condition_pair_once(n_items, per):
    size = design.block_size(n_items, len(CONDITIONS), per)
    pairs = Counter(pair for slot in range(size) for pair in design.plan(n_items, CONDITIONS, per, 3, slot))
    assert set(pairs) == {(i, c) for i in range(n_items) for c in CONDITIONS}
    assert set(pairs.values()) == {1}


@pytest.mark.parametrize("n_items,per", [(12, 5), (23, 5), (554, 20), (40, 12)])
def test_each_participant_sees_every_condition_about_equally(n_items, per):
    for slot in range(2 * design.block_size(n_items, len(CONDITIONS), per)):
        plan = design.plan(n_items, CONDITIONS, per, 0, slot)
        counts = Counter(c for _, c in plan)
        assert set(counts) == set(CONDITIONS), slot
        assert max(counts.values()) - min(counts.values()) <= 1
        assert per <= len(plan) < 2 * per
        assert len({i for i, _ in plan}) == len(plan)  # no item twice


def test_the_plan_is_seeded_and_slots_differ():
    assert design.plan(30, CONDITIONS, 10, 7, 4) == design.plan(30, CONDITIONS, 10, 7, 4)
    assert design.plan(30, CONDITIONS, 10, 7, 4) != design.plan(30, CONDITIONS, 10, 8, 4)
    first = [design.plan(30, CONDITIONS, 10, 7, s) for s in range(15)]
    assert len({tuple(p) for p in first}) == 15


def test_the_second_block_reshuffles_the_items():
    size = design.block_size(30, len(CONDITIONS), 10)
    chunk = {i for i, _ in design.plan(30, CONDITIONS, 10, 0, 0)}
    later = [{i for i, _ in design.plan(30, CONDITIONS, 10, 0, size + s)} for s in range(size)]
    assert chunk not in later


def test_a_plan_needs_items_conditions_and_a_size():
    with pytest.raises(ValueError, match="needs items"):
        design.plan(0, CONDITIONS, 5, 0, 0)
