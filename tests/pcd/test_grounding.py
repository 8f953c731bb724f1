"""The decoder's loss given only the chosen concepts (the `grounding` reward's input): it reproduces the suffix loss."""
import pytest
import torch

from pcdrl.pcd.config import PCDConfig
from pcdrl.pcd.model import PCD
from pcdrl.pcd.grounding import grounding_losses


def _item(pcd, n_positions, seed):
    ids = torch.randint(3, 90, (1, 6), generator=torch.Generator().manual_seed(seed))
    return pcd.read_activations(ids, slice(6 - n_positions, 6))[0]  # [P, d]


def test_a_positions_own_top_k_reproduces_suffix_loss(tiny_pcd):
    acts = _item(tiny_pcd, 1, seed=0)
    output = [10, 20, 30, 40]
    own = tiny_pcd.encode(acts).top_indices  # [1, k]: the one position's top-k is one row's chosen set
    got = grounding_losses(tiny_pcd, [acts], torch.tensor([0]), own, [output])
    with torch.no_grad():
        want, _ = tiny_pcd.suffix_loss(acts.unsqueeze(0), torch.tensor([output]))
    torch.testing.assert_close(got, want.cpu(), atol=1e-5, rtol=0)


def test_batched_equals_unbatched_with_ragged_items(tiny_pcd):
    acts = [_item(tiny_pcd, p, seed=s) for s, p in enumerate([1, 3, 3, 2])]
    outputs = [[5, 6], [7, 8, 9, 10, 11], [12, 13, 14], [15]]
    item_rows = torch.tensor([0, 1, 2, 1, 0, 2, 3, 3])
    chosen = torch.randint(0, 64, (8, 3), generator=torch.Generator().manual_seed(0))
    one = grounding_losses(tiny_pcd, acts, item_rows, chosen, outputs, batch_size=1)
    many = grounding_losses(tiny_pcd, acts, item_rows, chosen, outputs, batch_size=16)
    assert one.shape == (8,) and one.dtype == torch.float32 and torch.isfinite(one).all()
    torch.testing.assert_close(many, one, atol=1e-5, rtol=0)


def test_the_chosen_concepts_matter(tiny_pcd):
    acts = [_item(tiny_pcd, 2, seed=0)]
    top = tiny_pcd.encode(acts[0]).pre_acts.mean(0).topk(8).indices
    chosen = torch.stack([top[:4], top[4:]])
    losses = grounding_losses(tiny_pcd, acts, torch.tensor([0, 0]), chosen, [[10, 20, 30]])
    assert abs(losses[0] - losses[1]) > 1e-4


def test_errors_name_the_item(tiny_pcd):
    acts = [_item(tiny_pcd, 1, seed=0), _item(tiny_pcd, 1, seed=1)]
    with pytest.raises(ValueError, match="item 1 has an empty output"):
        grounding_losses(tiny_pcd, acts, torch.tensor([0, 1]), torch.tensor([[1], [2]]), [[5], []])
    for bad in (64, -1):
        with pytest.raises(ValueError, match=rf"row 1 \(item 0\) chose concept ids \[{bad}\] outside 0..63"):
            grounding_losses(tiny_pcd, acts, torch.tensor([1, 0]), torch.tensor([[1], [bad]]), [[5], [6]])


@pytest.mark.real_model
def test_real_smollm2_own_top_k_reproduces_suffix_loss():
    pcd = PCD.create(PCDConfig(lora_dropout=0.0), seed=0).eval()
    ids = pcd.tokenizer("The capital of France is", return_tensors="pt").input_ids
    acts = pcd.read_activations(ids, slice(-1, None))[0]  # [1, d]: the last prompt token
    pcd.encoder.fit_input_stats(acts, pcd.embedding_norm())
    output = pcd.tokenizer(" Paris, a city on the Seine.").input_ids
    got = grounding_losses(pcd, [acts], torch.tensor([0]), pcd.encode(acts).top_indices, [output])
    with torch.no_grad():
        want, _ = pcd.suffix_loss(acts.unsqueeze(0), torch.tensor([output]))
    torch.testing.assert_close(got, want.cpu(), atol=1e-5, rtol=0)
