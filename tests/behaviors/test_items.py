from pcdrl.behaviors.items import Item, answer_balance, assign_splits, balance, check_item, group_in_test

import pytest


def item(i, attribute="refusal", answer=1, group=None, family="attributes", options=("Yes", "No")):
    return Item(id=f"{attribute}/{i}", family=family, attribute=attribute, group=group or f"p{i}", model="m",
                layer=1, input_ids=[1, 2, 3], read_positions=[2], text="t", question="q",
                options=list(options), answer=answer, behaviour="b")


def test_balance_caps_the_majority_answer():
    items = [item(i, answer=1) for i in range(40)] + [item(100 + i, answer=0) for i in range(10)]
    kept, dropped = balance(items, factor=1.5, seed=0)
    shares = answer_balance(kept)["attributes/refusal"]
    assert dropped == {} and shares["No"] == pytest.approx(0.6) and len(kept) == 25
    assert balance(items, 1.5, 0)[0] == kept  # deterministic


def test_balance_drops_an_attribute_never_answered_yes():
    kept, dropped = balance([item(i, answer=1) for i in range(5)], factor=1.5, seed=0)
    assert kept == [] and "never gave the answer(s) ['Yes']" in dropped["refusal"]


def test_splits_hold_out_whole_groups_and_attributes():
    items = [item(i, attribute=a, group=f"prompt{i}") for i in range(200) for a in ("refusal", "mentions_place")]
    assign_splits(items, test_fraction=0.3, heldout_attributes=["mentions_place"], seed=0)
    assert all(it.split == "test" for it in items if it.attribute == "mentions_place")
    refusal = [it for it in items if it.attribute == "refusal"]
    assert 0.2 < sum(it.split == "test" for it in refusal) / len(refusal) < 0.4
    # The hash is stable: the same group always lands in the same split.
    assert all((it.split == "test") == group_in_test(it.group, 0.3, 0) for it in refusal)


def test_check_item_rejects_duplicate_options_and_bad_positions():
    bad = item(0, options=("Yes", "Yes"))
    with pytest.raises(ValueError, match="duplicate options"):
        check_item(bad)
    out_of_range = item(1)
    out_of_range.read_positions = [5]
    with pytest.raises(ValueError, match="read positions"):
        check_item(out_of_range)
