"""Output-centric labels: the lift statistic, the label text, and the model passes behind them."""
import pytest
import torch

from pcdrl.runtime.config_loader import ConfigError, load_config
from pcdrl.pcd.examples import Firing
from pcdrl.pcd.labels_config import LabelRunConfig
from pcdrl.pcd.next_tokens import NextTokens, decoder_next_tokens, subject_next_tokens
from pcdrl.pcd.output_labels import lift_tokens, render_label, sparse_mean, token_text


def test_lift_ranks_by_lift_and_floors_rare_tokens():
    p_base = torch.tensor([0.30, 0.10, 0.05, 1e-6, 0.20])
    p_fires = torch.tensor([0.30, 0.40, 0.10, 1e-4, 0.10])
    ranked = lift_tokens(p_fires, p_base, top=5, min_p=0.05)
    # Token 3 has lift 100 but S gives it 1e-4 where the concept fires: the floor drops it.
    # Token 0 (lift 1) and token 4 (lift 0.5) are not particular to the concept.
    assert [t.token_id for t in ranked] == [1, 2]
    assert ranked[0].lift == pytest.approx(4.0) and ranked[0].p_fires == pytest.approx(0.4)
    assert ranked[0].p_base == pytest.approx(0.1)
    assert [t.token_id for t in lift_tokens(p_fires, p_base, top=1, min_p=0.05)] == [1]


def test_lift_falls_back_to_the_most_probable_token():
    p_base = torch.tensor([0.5, 0.3, 0.2])
    p_fires = torch.tensor([0.4, 0.3, 0.2])  # nothing rises above its base rate
    assert [t.token_id for t in lift_tokens(p_fires, p_base, top=3, min_p=0.05)] == [0]


def test_sparse_mean_counts_missing_tokens_as_zero():
    ids = torch.tensor([[2, 0], [2, 1]])
    probs = torch.tensor([[0.6, 0.4], [0.8, 0.2]])
    assert sparse_mean(ids, probs, vocab=4).tolist() == pytest.approx([0.2, 0.1, 0.7, 0.0])


def test_output_tokens_of_firings_read_their_own_positions():
    # 2 windows x 2 middle positions (window positions 3, 4), top-2 next tokens of a 3-token vocabulary.
    top_ids = torch.tensor([[[0, 1], [2, 0]], [[2, 1], [0, 1]]])
    top_probs = torch.tensor([[[0.9, 0.1], [0.7, 0.3]], [[0.6, 0.4], [0.9, 0.1]]])
    nexts = NextTokens(top_ids, top_probs, base=torch.tensor([0.6, 0.1, 0.3]), prefix=3)
    assert nexts.greedy.tolist() == [[0, 2], [2, 0]]
    fired = [Firing(0, 4, 1.0), Firing(1, 3, 2.0)]  # token 2 at 0.7 and 0.6; token 1 at 0 and 0.4; token 0 at 0.3 and 0
    first, second = nexts.output_tokens(fired, top=3, min_p=0.05)  # token 0: lift 0.15 / 0.6 < 1, dropped
    assert first.token_id == 2 and first.p_fires == pytest.approx(0.65) and first.lift == pytest.approx(0.65 / 0.3)
    assert second.token_id == 1 and second.p_fires == pytest.approx(0.2) and second.lift == pytest.approx(2.0)


def test_label_text_of_each_kind():
    input_label = 'the words "of", "and", "And"'
    outputs = ["the", "a", "his", "her"]
    assert render_label("input", input_label, outputs, input_words=["of", "and", "And"]) == input_label
    assert render_label("output", input_label, outputs) == 'then "the", "a", "his"'
    assert render_label("both", input_label, outputs, input_words=["of", "and", "And"]) == 'on "of", "and"; then "the", "a"'
    # An explainer LM's label is kept whole; the output side is appended.
    assert render_label("both", "conjunctions", outputs) == 'conjunctions; then "the", "a"'
    assert render_label("output", "conjunctions", outputs, words=1) == 'then "the"'
    assert token_text(" the") == "the" and token_text("\n\n") == "<newline>" and token_text("  ") == "<space>"


@pytest.mark.real_model
def test_both_label_stays_compact_for_the_judge():
    from pcdrl.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    label = render_label("both", "", ["the", "a"], input_words=["of", "and"])
    assert len(tokenizer(label, add_special_tokens=False)["input_ids"]) <= 14


def test_unknown_kind_fails_at_load_naming_the_choices():
    with pytest.raises(ConfigError, match=r"^label\.kind: 'x' must be one of input, output, both$"):
        load_config(LabelRunConfig, None, ["label.kind=x"])
    assert load_config(LabelRunConfig, None, ["label.kind=output"]).label.kind == "output"


def test_next_token_scores_come_free_with_the_unchanged_continuation_scores(tiny_model_dir):
    from pcdrl.models import load_model, load_tokenizer
    from pcdrl.models.scoring import continuation_logprobs
    from pcdrl.models.scoring import continuation_and_next_logprobs

    model, tokenizer = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    prompts = ["Words described as: x\nText: the cat", "Words: y\nText: a dog ran", "z"]
    firsts, nexts = [" s", "n", " m"], ["a", " ", "at"]
    for batch_size in (1, 2, 3):
        first, following = continuation_and_next_logprobs(model, tokenizer, prompts, firsts, nexts, batch_size)
        # The input side must not move by a bit: these are the existing auto-interp scores.
        assert torch.equal(first, continuation_logprobs(model, tokenizer, prompts, firsts, batch_size=batch_size))
        joined = [p + f for p, f in zip(prompts, firsts)]  # a character tokenizer splits the join the same way
        expected = continuation_logprobs(model, tokenizer, joined, [n[0] for n in nexts], batch_size=1)  # first token
        assert torch.allclose(following, expected, atol=1e-5)


def test_subject_next_tokens_are_s_without_the_adapter(tiny_pcd):
    windows = torch.randint(3, 90, (5, 6))
    nexts = subject_next_tokens(tiny_pcd, windows, prefix=2, batch_size=2)
    with tiny_pcd.decoder.disable_adapter(), torch.no_grad():
        probs = torch.softmax(tiny_pcd.decoder(input_ids=windows).logits[:, 2:].float(), -1)
    with torch.no_grad():
        adapted = torch.softmax(tiny_pcd.decoder(input_ids=windows).logits[:, 2:].float(), -1)
    assert not torch.allclose(probs, adapted, atol=1e-4), "the fixture's LoRA should change S's predictions"
    assert nexts.top_ids.shape == (5, 4, 64)
    assert torch.equal(nexts.greedy, probs.argmax(-1))
    assert torch.allclose(nexts.top_probs[..., 0], probs.max(-1).values)
    assert torch.allclose(nexts.base, probs[0::2].mean((0, 1)), atol=1e-6)  # even (explaining) windows only


def test_decoder_tokens_read_one_concept_as_the_encoder_would_emit_it(tiny_pcd):
    concepts, values = [3, 17, 40], [2.0, 0.5, 1.5]
    read = decoder_next_tokens(tiny_pcd, concepts, values, batch_size=2)
    for concept, value in zip(concepts, values):
        sparse = torch.zeros(tiny_pcd.encoder.n_concepts)
        sparse[concept] = value
        with torch.no_grad():
            soft = tiny_pcd.encoder.W_emb(sparse).view(1, 1, -1)
            ids = torch.tensor([[tiny_pcd.placeholder_id]])
            probs = torch.softmax(tiny_pcd.decoder_logits(soft, ids, torch.ones_like(ids, dtype=torch.bool))[0, -1], -1)
        top = probs.topk(5)
        assert [t for t, _ in read[concept]] == top.indices.tolist()
        assert [p for _, p in read[concept]] == pytest.approx(top.values.tolist(), abs=1e-6)


@pytest.mark.real_model
def test_smollm2_output_tokens_are_what_s_predicts_where_a_concept_fires():
    from pcdrl.models import load_tokenizer
    from pcdrl.pcd.config import PCDConfig
    from pcdrl.pcd.examples import firings_by_concept, split_by_window
    from pcdrl.pcd.model import PCD

    pcd = PCD.create(PCDConfig(subject_model="smollm2-135m-instruct", read_layer=15, n_concepts=256, k=8)).eval()
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    text = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
            "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. "
            "And God said, Let there be light: and there was light. And God saw the light, that it was good: "
            "and God divided the light from the darkness. And God called the light Day, and the darkness he called "
            "Night. And the evening and the morning were the first day.")
    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
    windows = ids[: len(ids) // 12 * 12].view(-1, 12)  # prefix 4 + middle 8
    with torch.no_grad():
        out = pcd.encode(pcd.read_activations(windows, slice(4, 12)))
    firings = firings_by_concept(out.top_indices.cpu(), out.top_values.cpu(), offset=4)
    nexts = subject_next_tokens(pcd, windows, prefix=4)
    # S alone: its next-token distribution at every middle position, with the (zero-initialised) LoRA off.
    with pcd.decoder.disable_adapter(), torch.no_grad():
        probs = torch.softmax(pcd.decoder(input_ids=windows).logits[:, 4:].float(), -1)
    everywhere = probs[0::2].reshape(-1, probs.shape[-1]).mean(0)

    raised = 0
    for concept, fs in firings.items():
        explain = split_by_window(fs, 0)
        if len(explain) < 3:
            continue
        at_firings = torch.stack([probs[f.window, f.position - 4] for f in explain]).mean(0)
        recorded = nexts.output_tokens(explain, top=3, min_p=0.05)
        for token in recorded:
            assert token.p_fires == pytest.approx(at_firings[token.token_id].item(), abs=0.01)
            assert token.p_base == pytest.approx(everywhere[token.token_id].item(), abs=1e-5)
        if recorded[0].lift > 1:
            raised += 1
            assert all(at_firings[t.token_id] > 0.04 and at_firings[t.token_id] > everywhere[t.token_id] for t in recorded)
        else:  # nothing clears the floor: the token S is likeliest to write there stands in
            assert [t.token_id for t in recorded] == [int(at_firings.argmax())]
    assert raised >= 3, "expected several concepts with tokens S predicts more where they fire"


def test_rerendering_a_concepts_json_gives_each_kinds_label_from_the_stored_sides():
    from pcdrl.pcd.output_labels import rerender_concepts

    entry = {"id": 3, "label": 'on "of", "and"; then "the", "a"', "kind": "both", "labeller": "tokens",
             "input_label": 'the words "of", "and", "And"', "input_tokens": ["of", "and", "And"],
             "output_tokens": [{"token": " the"}, {"token": "the"}, {"token": " a"}, {"token": "\n"}]}
    old = {"id": 4, "label": 'the words "x"'}  # labelled before output labels existed: kept as it is
    concepts = {"label_kind": "both", "concepts": [entry, old]}
    assert rerender_concepts(concepts, "input")["concepts"][0]["label"] == 'the words "of", "and", "And"'
    assert rerender_concepts(concepts, "output")["concepts"][0]["label"] == 'then "the", "a", "<newline>"'
    both = rerender_concepts(concepts, "both")
    assert both["concepts"][0]["label"] == entry["label"] and both["concepts"][1] == old
    assert rerender_concepts(concepts, "output")["label_kind"] == "output" and concepts["concepts"][0] is entry
