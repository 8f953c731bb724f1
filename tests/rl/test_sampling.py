import itertools
import math

import pytest
import torch

from pcdrl.rl.sampling import greedy_top_k, gumbel_top_k, plackett_luce_logprob


def test_plackett_luce_is_a_distribution_over_ordered_sets():
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.5, 0.0]])
    for temperature in (0.5, 1.0, 3.0):
        total = sum(
            math.exp(plackett_luce_logprob(logits, torch.tensor([list(seq)]), temperature).item())
            for seq in itertools.permutations(range(5), 3)
        )
        assert total == pytest.approx(1.0, abs=1e-5)


def test_gumbel_top_k_samples_match_plackett_luce():
    logits = torch.tensor([[1.0, 0.0, -0.5, 0.7]])
    generator = torch.Generator().manual_seed(0)
    n = 20000
    draws = gumbel_top_k(logits.expand(n, -1), 2, temperature=1.0, generator=generator)
    assert all(len(set(row)) == 2 for row in draws.tolist()[:100])  # distinct concepts
    counts = {}
    for row in draws.tolist():
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    for seq in itertools.permutations(range(4), 2):
        expected = math.exp(plackett_luce_logprob(logits, torch.tensor([list(seq)])).item())
        observed = counts.get(seq, 0) / n
        assert observed == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / n) + 1e-3)


def test_low_temperature_approaches_greedy_and_gradients_flow():
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0]], requires_grad=True)
    assert gumbel_top_k(logits, 2, temperature=1e-3, generator=torch.Generator().manual_seed(1)).tolist() == [[1, 2]]
    assert greedy_top_k(logits, 2).tolist() == [[1, 2]]
    plackett_luce_logprob(logits, torch.tensor([[2, 0]])).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="k=5 must be between 1 and the number of concepts \\(4\\)"):
        gumbel_top_k(torch.zeros(1, 4), 5)
    with pytest.raises(ValueError, match="temperature must be positive"):
        gumbel_top_k(torch.zeros(1, 4), 2, temperature=0)
