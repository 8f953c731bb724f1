"""Shared fixtures. Tiny models are built from a config and saved as real HF folders, so unit
tests exercise the same load-by-path code as real models; `real_model` tests use SmolLM2."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PCDRL_NO_PROGRESS", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import pytest
import torch

torch.set_num_threads(1)

TINY_VOCAB = ["<pad>", "<eos>", "<unk>"] + [chr(c) for c in range(32, 127)]


def build_tiny_model_folder(path, seed: int = 0, layers: int = 4, hidden: int = 32):
    """A 4-layer, 32-wide Llama with a character-level tokenizer, saved to ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(TINY_VOCAB)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.decoder = decoders.Fuse()  # characters join back without spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        pad_token_id=0, eos_token_id=1, bos_token_id=1,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture(scope="session")
def tiny_model_dir_64(tmp_path_factory):
    """64 wide: bitsandbytes' AVX-512 4-bit CPU kernel packs weights in blocks of 64 input features, so the
    32-wide tiny model fails there with a reshape error (its AVX2 path accepts any width)."""
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny-llama-64"), hidden=64))


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A fresh $PCDRL_CACHE for tests that must not see (or pollute) the user's cache."""
    monkeypatch.setenv("PCDRL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tiny_corpus(tmp_path):
    """A local text file long enough for a few dozen small windows."""
    import random

    rng = random.Random(0)
    words = "the cat sat on a mat while dogs ran in parks and birds sang over old red roofs".split()
    lines = [" ".join(rng.choice(words) for _ in range(40)) for _ in range(60)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def tiny_pcd(tiny_model_dir):
    """A tiny PCD in eval mode whose decoder LoRA is non-zero (B starts at zero), so the adapter matters."""
    import torch

    from pcd.config import PCDConfig
    from pcd.model import PCD

    config = PCDConfig(subject_model=tiny_model_dir, read_layer=1, n_concepts=64, k=4, lora_rank=4, lora_dropout=0.0)
    pcd = PCD.create(config, seed=0)
    with torch.no_grad():
        for name, p in pcd.decoder.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return pcd.eval()
