"""VLLMBackend on the real SmolLM2 must score and generate like HFBackend (fp32 on both sides)."""
from __future__ import annotations

import sys

import pytest

from pcdrl.models.backends import BackendConfig, BackendError, make_backend

MODEL = "smollm2-135m-instruct"
TOLERANCE_NATS = 1e-2  # largest allowed |vLLM - HF| for one option's summed log-prob, fp32 on both sides

PREFIXES = [
    "The model is thinking about: 1) rain 2) umbrellas\nQuestion: Which will it write next?\nAnswer:",
    "Question: Does the assistant refuse to answer?\nAnswer:",
    "The quick brown fox jumps over the lazy dog. Then the dog",
    "Question: Does the assistant refuse to answer?\nAnswer:",  # a repeated prefix
]
OPTIONS = [
    [" it was raining hard", " the cat sat on the mat", " umbrellas", " Yes"],
    [" Yes", " No"],
    [" barked", " woke up and chased the fox", " slept", " barked"],  # a repeated option
    [" No", " Maybe"],
]
CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def vllm_backend():
    backend = make_backend(BackendConfig(kind="vllm", model=MODEL, max_model_len=1024, kv_cache_gb=1.0))
    yield backend
    backend.close()


def flat(rows):
    return [x for row in rows for x in row]


def test_scores_match_hf(vllm_backend, hf_backend):
    got = vllm_backend.score_options(PREFIXES, OPTIONS)
    want = hf_backend.score_options(PREFIXES, OPTIONS)
    assert [len(r) for r in got] == [len(r) for r in OPTIONS]
    gap = max(abs(g - w) for g, w in zip(flat(got), flat(want)))
    print(f"max |vllm - hf| = {gap:.2e} nats over {len(flat(got))} options")
    assert flat(got) == pytest.approx(flat(want), abs=TOLERANCE_NATS)
    assert got[1][1] == got[3][0]  # the same (prefix, option) pair, scored once
    assert got[2][0] == got[2][3]


def test_cached_rescore_is_exact_and_reruns_full_hits(vllm_backend, monkeypatch):
    """A second call finds whole prompts in the prefix cache; those must be rerun, not misread."""
    first = vllm_backend.score_options(PREFIXES, OPTIONS)
    calls = []
    real_generate = vllm_backend.llm.generate

    def spy(requests, params, **kw):
        calls.append((len(requests), params.skip_reading_prefix_cache))
        return real_generate(requests, params, **kw)

    monkeypatch.setattr(vllm_backend.llm, "generate", spy)
    again = vllm_backend.score_options(PREFIXES, OPTIONS)
    assert flat(again) == pytest.approx(flat(first), abs=1e-4)
    assert calls[0][1] is False  # first pass reads the cache
    assert len(calls) == 2 and calls[1][1] is True and calls[1][0] > 0  # the full hits ran again without it


def test_generation_matches_hf_greedy(vllm_backend, hf_backend):
    prompts = [
        CHAT.format("What is the capital of France?"),
        "Once upon a time, in a small village,",
        CHAT.format("Write a haiku about the sea."),
    ]
    got = vllm_backend.generate(prompts, max_new_tokens=24)
    want = hf_backend.generate(prompts, max_new_tokens=24)
    print("vllm:", got, "\nhf:  ", want)
    assert got == want


def test_ignore_eos_and_token_id_prompts(vllm_backend, hf_backend):
    prompt = CHAT.format("Reply with one word: yes or no. Is water wet?")
    short = vllm_backend.generate([prompt], max_new_tokens=40)[0]
    ids = vllm_backend.prompt_ids(prompt)
    forced_text, forced_ids = vllm_backend.generate([prompt, ids], max_new_tokens=40, ignore_eos=True)
    assert forced_ids == forced_text  # ids are used as given; here they are the text's own tokens
    assert len(vllm_backend.tokenizer(short)["input_ids"]) < 40  # the model stops by itself
    assert len(forced_text) > len(short) and forced_text.startswith(short)
    assert forced_text == hf_backend.generate([prompt], max_new_tokens=40, ignore_eos=True)[0]


def test_bad_requests(vllm_backend):
    with pytest.raises(ValueError, match="2 prefixes but 1 option lists"):
        vllm_backend.score_options(["a", "b"], [[" x"]])
    with pytest.raises(ValueError, match="empty option"):
        vllm_backend.score_options(["a"], [[" x", ""]])
    with pytest.raises(ValueError, match="no tokens to condition on"):
        vllm_backend.score_options([""], [[" x"]])
    assert vllm_backend.generate([], max_new_tokens=4) == []


def test_missing_vllm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError
    with pytest.raises(BackendError, match=r"make test-vllm.*pip install vllm"):
        make_backend(BackendConfig(kind="vllm", model=MODEL))
