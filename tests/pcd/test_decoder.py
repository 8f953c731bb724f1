import pytest
import torch

from pcdrl.pcd.decoder import embed_with_soft_tokens, soft_prompt_batch


def _batch(pcd, batch=2, middle=5, suffix=6):
    ids = torch.randint(3, 90, (batch, 4 + middle + suffix), generator=torch.Generator().manual_seed(1))
    acts = pcd.read_activations(ids[:, : 4 + middle], slice(4, 4 + middle))
    return ids, acts, ids[:, 4 + middle :]


def test_soft_tokens_change_the_decoder_output(tiny_pcd):
    _, acts, suffix = _batch(tiny_pcd)
    soft, _ = tiny_pcd.soft_tokens(acts)
    input_ids, mask, _ = soft_prompt_batch(suffix, soft.shape[1], tiny_pcd.placeholder_id)
    logits_a = tiny_pcd.decoder_logits(soft, input_ids, mask)
    logits_b = tiny_pcd.decoder_logits(soft + 1.0, input_ids, mask)
    assert not torch.allclose(logits_a[:, -1], logits_b[:, -1])
    # Placeholder ids themselves are irrelevant: only the soft vectors enter at those positions.
    other_ids = input_ids.masked_fill(mask, 5)
    torch.testing.assert_close(tiny_pcd.decoder_logits(soft, other_ids, mask), logits_a)


def test_gradients_reach_W_enc_W_emb_and_lora(tiny_pcd):
    _, acts, suffix = _batch(tiny_pcd)
    loss, _ = tiny_pcd.suffix_loss(acts, suffix)
    loss.mean().backward()
    encoder = tiny_pcd.encoder
    assert encoder.W_enc.weight.grad is not None and encoder.W_enc.weight.grad.abs().sum() > 0
    assert encoder.W_emb.weight.grad is not None and encoder.W_emb.weight.grad.abs().sum() > 0
    lora_grads = [p.grad for n, p in tiny_pcd.decoder.named_parameters() if "lora_A" in n]
    assert lora_grads and all(g is not None and g.abs().sum() > 0 for g in lora_grads)
    base_grads = [p.grad for n, p in tiny_pcd.decoder.named_parameters() if "lora" not in n]
    assert all(g is None for g in base_grads), "S's own weights must stay frozen"


def test_suffix_labels_only_cover_the_suffix():
    suffix = torch.tensor([[10, 11, 12]])
    input_ids, mask, labels = soft_prompt_batch(suffix, 2, placeholder_id=0)
    assert input_ids.tolist() == [[0, 0, 10, 11, 12]]
    assert mask.tolist() == [[True, True, False, False, False]]
    assert labels.tolist() == [[-100, -100, 10, 11, 12]]


def test_placeholder_count_mismatch_is_an_error(tiny_pcd):
    ids = torch.zeros(1, 4, dtype=torch.long)
    mask = torch.tensor([[True, False, False, False]])
    with pytest.raises(ValueError, match="placeholder"):
        embed_with_soft_tokens(tiny_pcd.decoder, ids, torch.zeros(1, 2, 32), mask)
