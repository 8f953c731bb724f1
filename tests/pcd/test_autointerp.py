import math

import torch

from pcdrl.pcd.autointerp import derangement, simulator_prompt
from pcdrl.pcd.stats import auroc, bootstrap_ci, bootstrap_mean, pearson
from pcdrl.pcd.examples import firings_by_concept, render_context, split_by_window, token_statistics_label


def test_auroc_orders_and_ties():
    positive = torch.tensor([True, True, False, False])
    assert auroc(torch.tensor([3.0, 2.0, 1.0, 0.0]), positive) == 1.0
    assert auroc(torch.tensor([0.0, 1.0, 2.0, 3.0]), positive) == 0.0
    assert auroc(torch.tensor([1.0, 1.0, 1.0, 1.0]), positive) == 0.5


def test_pearson_and_bootstrap():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert abs(pearson(x, 2 * x + 1) - 1.0) < 1e-6
    assert abs(pearson(x, -x) + 1.0) < 1e-6
    low, high = bootstrap_ci(torch.tensor([0.5] * 10))
    assert low == high == 0.5


def test_the_bootstrap_leaves_out_unscored_concepts():
    # A concept the simulator could not score is NaN: it must not turn the whole interval into NaN.
    values = torch.tensor([0.9, 0.4, 0.75, float("nan"), 0.6, 0.55], dtype=torch.float64)
    mean, ci = bootstrap_mean(values, 500, 3)
    assert mean == 0.64 and ci == [0.5, 0.8]
    # Unrounded, the draws are those judge-eval and the label summaries have always reported.
    assert bootstrap_ci(values, 500, 3) == [0.49999999999999994, 0.8]
    nothing = bootstrap_mean(torch.tensor([float("nan")] * 3))
    assert math.isnan(nothing[0]) and all(math.isnan(x) for x in nothing[1])


def test_derangement_moves_every_label():
    for seed in range(20):
        perm = derangement(7, seed)
        assert sorted(perm) == list(range(7))
        assert all(perm[i] != i for i in range(7))


def test_firings_grouped_by_concept_strongest_first():
    top_indices = torch.tensor([[[0, 1], [1, 2]], [[0, 2], [2, 1]]])  # [N=2, M=2, k=2]
    top_values = torch.tensor([[[5.0, 1.0], [2.0, 3.0]], [[9.0, 4.0], [8.0, 0.5]]])
    grouped = firings_by_concept(top_indices, top_values, offset=10)
    assert [f.value for f in grouped[0]] == [9.0, 5.0]
    assert [(f.window, f.position) for f in grouped[2]] == [(1, 11), (1, 10), (0, 11)]
    assert [f.window for f in split_by_window(grouped[2], 0)] == [0]


def test_render_context_and_token_label(tiny_model_dir):
    from pcdrl.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    ids = torch.tensor(tokenizer("the cat sat", add_special_tokens=False)["input_ids"])
    assert render_context(tokenizer, ids, 4, after=2) == "the [[c]]at"
    grouped = firings_by_concept(torch.tensor([[[0], [0], [0]]]), torch.tensor([[[1.0], [3.0], [2.0]]]), offset=4)
    label = token_statistics_label(tokenizer, ids.unsqueeze(0), grouped[0], top=2)
    assert label == 'the words "a", "t"'


def test_simulator_prompt_golden():
    assert simulator_prompt("animals", "the [[cat]] sat") == (
        "A feature of a language model is described as: animals\n"
        "Text: the [[cat]] sat\n"
        "Question: does the word in [[double brackets]] match the description? Answer Yes or No.\n"
        "Answer:"
    )


def test_likelihood_and_explainer_prompts_golden():
    from pcdrl.pcd.autointerp import likelihood_prompt
    from pcdrl.pcd.labelling import EXPLAINER_PROMPT

    assert likelihood_prompt('the words "for", "because"', "they shall not find me:") == (
        'Words described as: the words "for", "because"\nText: they shall not find me:'
    )
    assert EXPLAINER_PROMPT.format(examples="1. a [[b]] c") == (
        "Below are short text excerpts. In each one, a word is marked with [[double brackets]].\n"
        "1. a [[b]] c\n"
        "In three to six words, what do the marked words have in common?"
    )
