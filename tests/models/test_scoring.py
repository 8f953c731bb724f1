import pytest
import torch

from pcdrl.models import load_model, load_tokenizer
from pcdrl.models.scoring import candidate_token_ids, continuation_logprobs, generate_greedy, next_token_logprobs


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)


def manual_logprob(model, tokenizer, prompt, continuation):
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + c])
    with torch.no_grad():
        logprobs = model(input_ids=ids).logits.log_softmax(-1)[0]
    return sum(logprobs[len(p) + i - 1, tok].item() for i, tok in enumerate(c))


def test_continuation_logprobs_match_unpadded_forward_passes(tiny):
    model, tokenizer = tiny
    prompts = ["the cat", "a much longer prompt here", "x"]
    continuations = [" sat", "!", " on the mat"]
    batched = continuation_logprobs(model, tokenizer, prompts, continuations, batch_size=2)
    for got, prompt, cont in zip(batched.tolist(), prompts, continuations):
        assert abs(got - manual_logprob(model, tokenizer, prompt, cont)) < 1e-4


def test_next_token_logprobs_match_unpadded_forward_passes(tiny):
    model, tokenizer = tiny
    prompts = ["hello there", "hi"]
    got = next_token_logprobs(model, tokenizer, prompts, ["Y", "N"], batch_size=2)
    for row, prompt in enumerate(prompts):
        for col, cand in enumerate(["Y", "N"]):
            assert abs(got[row, col].item() - manual_logprob(model, tokenizer, prompt, cand)) < 1e-4


def test_candidates_sharing_a_first_token_are_refused(tiny):
    _, tokenizer = tiny
    with pytest.raises(ValueError, match="share a first token"):
        candidate_token_ids(tokenizer, ["yes", "yeah"])


def test_generate_greedy_batches_like_single_prompts(tiny):
    model, tokenizer = tiny
    prompts = ["abc", "a longer one"]
    together = generate_greedy(model, tokenizer, prompts, max_new_tokens=4, batch_size=2)
    alone = [generate_greedy(model, tokenizer, [p], max_new_tokens=4)[0] for p in prompts]
    assert together == alone and all(len(t) > 0 for t in together)
