"""The hf backend's batched, prefix-cached scoring must equal scoring every (prompt, option) alone."""
import pytest
import torch

from models.backends import BackendConfig, make_backend
from models.scoring import continuation_logprobs

PREFIXES = ["abc de", "x", "abc de", "hello there, how are"]
OPTIONS = [[" f", " fgh", " zz top"], [" y", " yy"], [" q"], [" you", " we doing", " they", " it"]]


def unbatched(backend, prefixes, options):
    rows = []
    for prefix, opts in zip(prefixes, options):
        ids = backend.prompt_ids(prefix)
        scores = []
        for option in opts:
            full = torch.tensor([ids + backend.option_ids(option)])
            logp = torch.log_softmax(backend.model(input_ids=full).logits[0].float(), -1)
            n = len(ids)
            scores.append(sum(logp[n - 1 + j, t].item() for j, t in enumerate(backend.option_ids(option))))
        rows.append(scores)
    return rows


def test_prefix_cached_scores_match_unbatched_forwards(tiny_model_dir):
    backend = make_backend(BackendConfig(model=tiny_model_dir, batch_size=2))
    got = backend.score_options(PREFIXES, OPTIONS)
    want = unbatched(backend, PREFIXES, OPTIONS)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-4)


def test_generate_matches_one_prompt_at_a_time(tiny_model_dir):
    backend = make_backend(BackendConfig(model=tiny_model_dir, batch_size=3))
    prompts = ["ab", "hello world", [5, 6, 7, 8, 9, 10]]
    batched = backend.generate(prompts, max_new_tokens=5, ignore_eos=True)
    alone = [backend.generate([p], max_new_tokens=5, ignore_eos=True)[0] for p in prompts]
    assert batched == alone and all(len(text) == 5 for text in batched)  # char-level: 5 tokens = 5 chars


def test_bad_requests(tiny_model_dir):
    backend = make_backend(BackendConfig(model=tiny_model_dir))
    with pytest.raises(ValueError, match="2 prefixes but 1 option lists"):
        backend.score_options(["a", "b"], [[" x"]])
    with pytest.raises(ValueError, match="empty option"):
        backend.score_options(["a"], [[" x", ""]])
    with pytest.raises(ValueError, match="backend kind 'onnx' is unknown"):
        make_backend(BackendConfig(kind="onnx", model=tiny_model_dir))


@pytest.mark.real_model
def test_real_smollm2_scores_match_full_forward():
    backend = make_backend(BackendConfig(model="smollm2-135m-instruct", batch_size=4))
    prefixes = ["The model is thinking about: 1) rain\nQuestion: Which will it write?\nAnswer:", "Question: Does it refuse?\nAnswer:"]
    options = [[" it was raining", " the cat"], [" Yes", " No"]]
    got = backend.score_options(prefixes, options)
    flat = continuation_logprobs(backend.model, backend.tokenizer, [p for p, o in zip(prefixes, options) for _ in o],
                                 [x for o in options for x in o])
    assert [x for row in got for x in row] == pytest.approx(flat.tolist(), abs=1e-3)


def test_shared_stem_scores_match_unbatched_forwards(tiny_model_dir):
    """Prefixes with a long common start (a judge's persona) run the stem once; scores must not change."""
    from models.backends.hf import shared_stem_length

    backend = make_backend(BackendConfig(model=tiny_model_dir, batch_size=4))
    stem = "You are a careful reader of notes. "
    prefixes = [stem + "one", stem + "a much longer second prefix", stem + "x", stem + "one more"]
    options = [[" a", " bcd"], [" e"], [" fg", " h", " ijk"], [" l"]]
    rows = [backend.prompt_ids(p) for p in prefixes]
    assert shared_stem_length(rows) == len(stem)
    assert shared_stem_length([rows[0], rows[0]]) == len(rows[0]) - 1  # each row keeps a token of its own
    got = backend.score_options(prefixes, options)
    want = unbatched(backend, prefixes, options)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-4)
