"""Items as the PCD sees them: the set-up that train, eval, judge-eval and the data build share."""
import pytest
import torch

from pcdrl.behaviors.encoded import check_items_match, encode_items, load_labelled_pcd, pretrained_concepts
from pcdrl.pcd.checkpoint import save_pcd


def _item(i, ids, positions, model, layer=1):
    return {"id": f"cont/{i}", "model": model, "layer": layer, "input_ids": ids, "read_positions": positions}


@pytest.fixture
def labelled(tiny_pcd, tmp_path):
    # Every third concept has a label: the others may never be shown.
    tiny_pcd.concepts = {"concepts": [{"id": c, "label": f"label {c}" if c % 3 == 0 else ""} for c in range(64)]}
    save_pcd(tiny_pcd, tmp_path / "pcd")
    return load_labelled_pcd(tmp_path / "pcd")


def test_loads_the_labels_and_allows_only_labelled_concepts(labelled):
    assert labelled.labels == {c: f"label {c}" for c in range(0, 64, 3)}
    assert labelled.allowed.tolist() == [c % 3 == 0 for c in range(64)]
    assert not labelled.pcd.training, "eval mode: LoRA dropout would make reads noisy"


def test_batched_reads_equal_each_item_read_alone_and_pool_over_read_positions(labelled, tiny_model_dir):
    pcd = labelled.pcd
    # Ragged items in one batch: right padding must not change any read.
    items = [_item(0, [5, 6, 7, 8, 9, 10], [3, 4, 5], tiny_model_dir), _item(1, [11, 12, 13], [2], tiny_model_dir),
             _item(2, [20, 21, 22, 23], [0, 3], tiny_model_dir)]
    encoded = encode_items(labelled, items)
    assert encoded.pooled.shape == (3, pcd.encoder.d_model)
    for item, acts, pooled in zip(items, encoded.activations, encoded.pooled):
        alone = pcd.read_activations(torch.tensor([item["input_ids"]]))[0, item["read_positions"]]
        torch.testing.assert_close(acts, alone.cpu(), atol=1e-5, rtol=0)
        with torch.no_grad():
            torch.testing.assert_close(pooled, pcd.encoder.normalize(acts).mean(0), atol=0, rtol=0)
    greedy = pretrained_concepts(labelled, encoded, 4)
    with torch.no_grad():
        logits = pcd.encoder.W_enc(encoded.pooled).masked_fill(~labelled.allowed, float("-inf"))
    assert greedy == logits.topk(4).indices.tolist()
    assert all(c % 3 == 0 for row in greedy for c in row), "only labelled concepts are shown"


def test_items_from_another_model_or_layer_are_refused_naming_the_item(labelled, tiny_model_dir):
    good = _item(0, [5, 6, 7], [2], tiny_model_dir)
    check_items_match([good], labelled)
    # The mismatch is on the last item: every item is checked, not only the first.
    for bad, built_on in ((_item(7, [5, 6, 7], [2], tiny_model_dir, layer=2), f"{tiny_model_dir} layer 2"),
                          (_item(7, [5, 6, 7], [2], "gemma3-270m"), "gemma3-270m layer 1")):
        with pytest.raises(ValueError) as err:
            encode_items(labelled, [good, good, bad], data="runs/data")
        message = str(err.value)
        assert f"item cont/7 of runs/data was built on {built_on}" in message
        assert f"the PCD {labelled.path} reads {tiny_model_dir} layer 1" in message
        assert "pcdrl data build" in message


def test_a_mismatch_fails_before_s_reads_anything(labelled, tiny_model_dir):
    # A token id far outside the vocabulary would crash the read: the check must come first.
    unreadable = _item(0, [10**6], [0], tiny_model_dir, layer=3)
    with pytest.raises(ValueError, match=r"item cont/0 was built on .* layer 3, but the PCD .* reads .* layer 1"):
        encode_items(labelled, [unreadable])
