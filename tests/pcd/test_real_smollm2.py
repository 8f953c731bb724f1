"""The PCD on the real default subject, SmolLM2-135M-Instruct (small enough for CI)."""
import pytest
import torch

from pcdrl.pcd.config import CorpusConfig, PCDConfig, WindowConfig
from pcdrl.pcd.corpus import build_windows
from pcdrl.pcd.model import PCD

pytestmark = pytest.mark.real_model


def test_a_few_pretraining_steps_lower_the_loss_on_a_fixed_batch():
    config = PCDConfig(n_concepts=256, k=8, lora_dropout=0.0)
    pcd = PCD.create(config, seed=0)
    window = WindowConfig(prefix_len=8, middle_len=8, suffix_len=8)
    windows = build_windows(CorpusConfig(sources=["kjv"], max_windows=16), window, pcd.tokenizer)
    batch = windows.train[:4]
    acts = pcd.read_activations(batch[:, windows.s_input], windows.middle)
    pcd.encoder.fit_input_stats(acts, pcd.embedding_norm())
    optimizer = torch.optim.AdamW(pcd.trainable_parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        loss, _ = pcd.suffix_loss(acts, batch[:, windows.suffix])
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
        losses.append(loss.mean().item())
    assert losses[-1] < losses[0] - 0.5, losses
    assert pcd.encoder.W_enc.weight.grad is not None


def test_read_layer_beyond_smollm2_depth_is_refused():
    from pcdrl.pcd.activations import LayerIndexError

    with pytest.raises(LayerIndexError, match="has 30 layers: use 0..29"):
        PCD.create(PCDConfig(read_layer=30))
