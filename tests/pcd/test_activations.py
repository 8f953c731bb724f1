import pytest
import torch

from pcdrl.models import load_model
from pcdrl.pcd.activations import LayerIndexError, read_residual
from pcdrl.pcd.config import PCDConfig
from pcdrl.pcd.model import PCD


def test_read_residual_matches_hidden_states_and_stops_early(tiny_model_dir):
    model = load_model(tiny_model_dir)
    ids = torch.randint(3, 90, (2, 9))
    full = model(input_ids=ids, output_hidden_states=True).hidden_states
    for layer in (0, 2):
        torch.testing.assert_close(read_residual(model, ids, layer), full[layer + 1])
    torch.testing.assert_close(read_residual(model, ids, 1, slice(3, 6)), full[2][:, 3:6])
    ragged = torch.tensor([[0, 8], [4, 5]])
    picked = read_residual(model, ids, 1, ragged)
    torch.testing.assert_close(picked[1, 0], full[2][1, 4])
    # Blocks after the read layer never run.
    calls = []
    last = model.model.layers[-1].register_forward_hook(lambda *a: calls.append(1))
    read_residual(model, ids, 0)
    last.remove()
    assert calls == []


def test_layer_out_of_range_names_the_valid_range(tiny_model_dir):
    model = load_model(tiny_model_dir)
    with pytest.raises(LayerIndexError, match=r"read_layer=4 is out of range .* 4 layers: use 0\.\.3"):
        read_residual(model, torch.zeros(1, 3, dtype=torch.long), 4)


def test_reads_ignore_the_decoder_adapter(tiny_model_dir):
    pcd = PCD.create(PCDConfig(subject_model=tiny_model_dir, read_layer=2, n_concepts=16, k=2), seed=0)
    ids = torch.randint(3, 90, (1, 6))
    before = pcd.read_activations(ids)
    with torch.no_grad():
        for name, p in pcd.decoder.named_parameters():
            if "lora_B" in name:
                p.fill_(1.0)
    torch.testing.assert_close(pcd.read_activations(ids), before)
    plain = load_model(tiny_model_dir)
    torch.testing.assert_close(read_residual(plain, ids, 2), before)
