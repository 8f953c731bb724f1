import json

import pytest
import torch

from pcdrl.pcd.checkpoint import CheckpointError
from pcdrl.pcd.config import PCDConfig
from pcdrl.pcd.model import PCD


def test_save_load_round_trip_gives_identical_logits(tiny_model_dir, tmp_path):
    pcd = PCD.create(PCDConfig(subject_model=tiny_model_dir, read_layer=1, n_concepts=32, k=3, lora_rank=4), seed=0)
    with torch.no_grad():  # move every trainable tensor off its init so the test sees real state
        for p in pcd.trainable_parameters():
            p.add_(0.05 * torch.randn_like(p))
        pcd.encoder.input_scale.fill_(0.7)
        pcd.encoder.tokens_since_fired[3] = 123
    pcd.concepts = {"concepts": [{"id": 0, "label": "x"}]}
    pcd.eval()
    ids = torch.randint(3, 90, (2, 8))
    acts = pcd.read_activations(ids[:, :5], slice(1, 5))
    loss_before, _ = pcd.suffix_loss(acts, ids[:, 5:])

    pcd.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "concepts.json", "config.json", "decoder", "encoder.safetensors"
    ]
    loaded = PCD.from_pretrained(tmp_path / "ckpt")
    loaded.eval()
    loss_after, _ = loaded.suffix_loss(loaded.read_activations(ids[:, :5], slice(1, 5)), ids[:, 5:])
    assert torch.equal(loss_before, loss_after)
    soft = pcd.soft_tokens(acts)[0]
    from pcdrl.pcd.decoder import soft_prompt_batch

    batch = soft_prompt_batch(ids[:, 5:], soft.shape[1], pcd.placeholder_id)
    assert torch.equal(pcd.decoder_logits(soft, batch[0], batch[1]), loaded.decoder_logits(soft, batch[0], batch[1]))
    assert loaded.encoder.tokens_since_fired[3].item() == 123
    assert loaded.concepts == pcd.concepts
    assert loaded.config == pcd.config


def test_loading_a_folder_that_is_not_a_checkpoint_says_what_is_missing(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"format": "pcd-rl/pcd-v1"}))
    with pytest.raises(CheckpointError, match="missing encoder.safetensors, decoder, concepts.json"):
        PCD.from_pretrained(tmp_path)


@pytest.mark.parametrize("damage, message", [
    ("truncated", r"encoder\.safetensors is not a readable safetensors file .*copy it again or rerun `pcdrl pretrain`"),
    ("empty", r"encoder\.safetensors is not a readable safetensors file"),
    ("n_concepts", r"holds W_enc\.weight of shape \[32, 32\], but config\.json says pcd\.n_concepts=64 and d_model=32; "
                   r"the folder mixes two checkpoints"),
    ("no_pcd", r"config\.json has no 'pcd' entry; the checkpoint is damaged"),
    ("not_json", r"config\.json is not valid JSON"),
])
def test_a_damaged_checkpoint_is_refused_before_s_loads(tiny_model_dir, tmp_path, monkeypatch, damage, message):
    pcd = PCD.create(PCDConfig(subject_model=tiny_model_dir, read_layer=1, n_concepts=32, k=3, lora_rank=4), seed=0)
    pcd.save_pretrained(tmp_path / "ckpt")
    encoder, config = tmp_path / "ckpt" / "encoder.safetensors", tmp_path / "ckpt" / "config.json"
    meta = json.loads(config.read_text())
    if damage == "truncated":
        encoder.write_bytes(encoder.read_bytes()[: encoder.stat().st_size // 2])
    elif damage == "empty":
        encoder.write_bytes(b"")
    elif damage == "n_concepts":
        config.write_text(json.dumps({**meta, "pcd": {**meta["pcd"], "n_concepts": 64}}))
    elif damage == "no_pcd":
        config.write_text(json.dumps({k: v for k, v in meta.items() if k != "pcd"}))
    else:
        config.write_text("{not json")
    import pcdrl.models

    monkeypatch.setattr(pcdrl.models, "load_model", lambda *a, **k: pytest.fail("S was loaded for a damaged checkpoint"))
    with pytest.raises(CheckpointError, match=message):
        PCD.from_pretrained(tmp_path / "ckpt")
