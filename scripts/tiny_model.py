"""Write a tiny Llama (4 layers, 32 wide, character-level tokenizer) and a tiny text corpus, for smoke runs.

    python scripts/tiny_model.py OUT_DIR     # writes OUT_DIR/model (an HF folder) and OUT_DIR/corpus.txt

`make test-wheel` runs it with the clean venv's python: it needs only torch, transformers and tokenizers,
never the repository (the model is the one tests/conftest.py builds, written standalone so that the wheel
check does not import tests/).
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

TINY_VOCAB = ["<pad>", "<eos>", "<unk>"] + [chr(c) for c in range(32, 127)]
WORDS = "the cat sat on a mat while dogs ran in parks and birds sang over old red roofs 7 12".split()


def build_tiny_model_folder(path: Path, seed: int = 0, layers: int = 4, hidden: int = 32) -> Path:
    """A randomly initialised Llama with a character-level tokenizer, saved as a real HF folder at ``path``."""
    import torch
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
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_tiny_corpus(path: Path, lines: int = 80, words_per_line: int = 40, seed: int = 0) -> Path:
    """Lines of random words from a small vocabulary (with numbers, so that number checkers see both answers)."""
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(words_per_line)) for _ in range(lines)))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for model/ and corpus.txt (created)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(build_tiny_model_folder(args.out / "model"))
    print(write_tiny_corpus(args.out / "corpus.txt"))


if __name__ == "__main__":
    main()
