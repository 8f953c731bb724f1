"""The hf backend's batched, prefix-cached scoring must equal scoring every (prompt, option) alone."""
import pytest
import torch

from pcdrl.models.backends import BackendConfig, make_backend
from pcdrl.models.scoring import continuation_logprobs

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
    with pytest.raises(ValueError, match="backend.kind: 'onnx' is not one of hf, vllm, http"):
        make_backend(BackendConfig(kind="onnx", model=tiny_model_dir))


@pytest.mark.parametrize("field, value, message", [
    ("quantize", "int8_safe", "backend.quantize: 'int8_safe' is not one of none, int8, bnb8, bnb4"),
    ("batch_size", 0, "backend.batch_size: must be at least 1, got 0"),
])
def test_bad_backend_values_fail_when_the_config_is_made(field, value, message):
    """Before, an unknown quantize value loaded an fp32 model without a word."""
    from pcdrl.runtime.config_loader import ConfigError

    with pytest.raises(ConfigError, match=message):
        BackendConfig(**{field: value})


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
    from pcdrl.models.backends.hf import shared_stem_length

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


class TodayHF:
    """The scoring as it was before prefixes were sorted by length and option tails were batched by length on a
    view of the prefix cache (not a deep copy): the reference the faster path must match. It drives the
    backend's own `_run_prefixes`, which did not change."""

    def __init__(self, backend):
        self.backend = backend

    @torch.no_grad()
    def score_options(self, prefixes, options):
        import copy
        from collections import defaultdict

        b = self.backend
        by_prefix = defaultdict(list)
        for row, (prefix, opts) in enumerate(zip(prefixes, options)):
            for col, option in enumerate(opts):
                by_prefix[prefix].append((row, col, b.option_ids(option)))
        results = [[0.0] * len(opts) for opts in options]
        unique = list(by_prefix)
        for start in range(0, len(unique), b.config.batch_size):
            chunk = unique[start : start + b.config.batch_size]
            out, mask = b._run_prefixes([b.prompt_ids(p) for p in chunk])
            first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
            longer = []
            for i, prefix in enumerate(chunk):
                for row, col, oids in by_prefix[prefix]:
                    results[row][col] = float(first[i, oids[0]])
                    if len(oids) > 1:
                        longer.append((i, row, col, oids))
            step = 4 * b.config.batch_size
            for s in range(0, len(longer), step):
                requests = longer[s : s + step]
                select = torch.tensor([i for i, *_ in requests])
                cache = copy.deepcopy(out.cache if hasattr(out, "cache") else out.past_key_values)
                cache.batch_select_indices(select)
                width = max(len(o) - 1 for *_, o in requests)
                ids, targets = torch.zeros(len(requests), width, dtype=torch.long), torch.zeros(len(requests), width, dtype=torch.long)
                tail = torch.zeros(len(requests), width, dtype=torch.long)
                for r, (*_, o) in enumerate(requests):
                    ids[r, : len(o) - 1], targets[r, : len(o) - 1], tail[r, : len(o) - 1] = torch.tensor(o[:-1]), torch.tensor(o[1:]), 1
                past = mask[select]
                logits = b.model(input_ids=ids, attention_mask=torch.cat([past, tail], 1),
                                 position_ids=past.sum(-1, keepdim=True) + torch.arange(width), use_cache=True,
                                 **{b._cache_kw: cache}).logits.float()
                totals = (torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1) * tail).sum(-1)
                for r, (_, row, col, _) in enumerate(requests):
                    results[row][col] += float(totals[r])
        return results


def max_gap(a, b):
    return max(abs(x - y) for r, s in zip(a, b) for x, y in zip(r, s))


# nats. Unpadded tails attend over fewer keys than today's padded ones, which moves a score by ~1e-6..1.5e-5 nats on
# SmolLM2 (today's own scores move by up to 2.6e-5 between batch sizes 4 and 8).
TOLERANCE = 1e-5


def test_faster_scoring_equals_todays_and_keeps_the_callers_order(tiny_model_dir):
    # Four distinct prefixes (one repeats) in batches of two, so no prefix is alone in a batch in either order.
    stem = "You are a careful reader of notes. "
    prefixes = [stem + "a much longer prefix than the others", stem + "x", "no stem here", stem + "mid length",
                stem + "x"]
    options = [[" a", " bcd", " efghij"], [" e"], [" fg", " h", " ijk"], [" lmn", " o"], [" p", " qr"]]
    backend = make_backend(BackendConfig(model=tiny_model_dir, batch_size=2))
    got = backend.score_options(prefixes, options)
    assert max_gap(got, TodayHF(backend).score_options(prefixes, options)) <= TOLERANCE
    # Sorting by length must map results back: each prefix scored alone gives its own row.
    for prefix, opts, row in zip(prefixes, options, got):
        assert backend.score_options([prefix], [opts])[0] == pytest.approx(row, abs=TOLERANCE)


@pytest.mark.real_model
def test_real_smollm2_faster_scoring_equals_todays():
    backend = make_backend(BackendConfig(model="smollm2-135m-instruct", batch_size=2))
    persona = "You are reading a short note about what an AI model is thinking, just before it writes.\n\n"
    labels = ['the words "of", "and", "And"', 'the words "the", "a"', 'the words "God", "Lord", "said", "unto"']
    prefixes = [persona + "The model is thinking about:\n" + "\n".join(f"{i}) {l}" for i, l in enumerate(labels[:n], 1))
                + "\n\nQuestion: Which text will the model write next?\nAnswer:" for n in (0, 1, 2, 3)]
    options = [[" And God said unto Moses", " import numpy as np", " the seventh day", " Yes"]] * 4
    # Given shortest first, both paths batch the same prefixes together.
    assert max_gap(backend.score_options(prefixes, options), TodayHF(backend).score_options(prefixes, options)) <= TOLERANCE
    # In another order today's batches differ, and today's own scores move with a prefix's neighbours (its batch's
    # shared stem is split elsewhere): 2.9e-5 nats here. Sorting must still give every row its own scores.
    shuffled = [prefixes[i] for i in (3, 0, 2, 1)]
    got = backend.score_options(shuffled, options)
    assert max_gap(got, TodayHF(backend).score_options(shuffled, options)) <= 1e-4
    assert max_gap([got[1], got[3], got[2], got[0]], backend.score_options(prefixes, options)) == 0.0
