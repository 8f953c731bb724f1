"""The formula policy: masked sampling, log-probs recomputed from tokens, and the warm start to greedy conjunctions."""
from __future__ import annotations

import pytest
import torch

from pcdrl.explanations import (And, FormulaConfig, FormulaError, Literal, Not, Or, fits, is_true, operators_used,
                                parse, to_id_text)
from pcdrl.explanations.grammar import PAD, decode, encode
from pcdrl.pcd.concepts import pooled_inputs
from pcdrl.pcd.encoder import ConceptEncoder
from pcdrl.rl.formula_policy import (FormulaPolicy, FormulaPolicyConfig, evaluate_tokens, frozen_copy,
                                     greedy_conjunction, log_probs, sample, warm_start)

N_CONCEPTS, D = 16, 8
SMALL = FormulaPolicyConfig(hidden=32, embed=16)


def make(seed=0, concept_head=None):
    torch.manual_seed(seed)
    return FormulaPolicy(D, N_CONCEPTS, SMALL, concept_head)


def items(n, seed=0, positions=3):
    """n items: pooled [n, D], activity [n, P, N_CONCEPTS] (bool), fired [n, N_CONCEPTS]."""
    g = torch.Generator().manual_seed(seed)
    pooled = torch.randn(n, D, generator=g)
    active = torch.rand(n, positions, N_CONCEPTS, generator=g) < 0.25
    return pooled, active, active.any(1)


def test_samples_are_well_formed_fit_and_are_true_on_their_items():
    cfg = FormulaConfig(max_literals=4, max_depth=3)
    pooled, active, fired = items(2000, seed=1)
    policy = make()
    out = sample(policy, pooled, cfg, fired=fired, temperature=1.0, generator=torch.Generator().manual_seed(0))
    for f, tokens, act in zip(out.formulas, out.tokens.tolist(), active):
        assert parse(to_id_text(f)) == f and fits(f, cfg)
        assert is_true(f, act), to_id_text(f)
        assert [t for t in tokens if t != PAD] == encode(f, policy.vocab)
    seen = set().union(*(operators_used(f) for f in out.formulas))
    assert seen == {"and", "or", "not"}, "an untrained policy explores every operator"


def test_sampling_is_deterministic_given_a_generator_and_log_probs_match_it():
    cfg = FormulaConfig(max_literals=3, max_depth=2)
    policy, (pooled, _, fired) = make(), items(64)
    allowed = torch.ones(N_CONCEPTS, dtype=torch.bool)
    allowed[:3] = False
    for temperature, truth in ((1.0, fired), (0.7, None), (0.0, fired)):
        a = sample(policy, pooled, cfg, allowed, truth, temperature, torch.Generator().manual_seed(5))
        b = sample(policy, pooled, cfg, allowed, truth, temperature, torch.Generator().manual_seed(5))
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logprobs, b.logprobs)
        again = log_probs(policy, pooled, a.tokens, cfg, allowed, truth, temperature)
        assert torch.allclose(again, a.logprobs, atol=1e-6, rtol=0)
        assert (a.logprobs[~a.mask] == 0).all() and (a.logprobs <= 0).all()
    c = sample(policy, pooled, cfg, allowed, fired, 1.0, torch.Generator().manual_seed(6))
    assert not torch.equal(c.tokens, a.tokens), "another seed gives other formulas"


def test_forced_tokens_cost_nothing_and_the_value_head_scores_each_prefix():
    cfg = FormulaConfig(max_literals=2, max_depth=1, operators=["and"])
    policy, (pooled, _, _) = make(), items(4)
    tokens = torch.tensor([encode(And((Literal(3), Literal(4))), policy.vocab)] * 4)   # AND c3 c4 ) END
    out = evaluate_tokens(policy, pooled, tokens, cfg)
    # After two literals the budget is spent: ')' and END are forced, so their log-prob and entropy are 0.
    assert out.logprobs[:, 3:].abs().max() == 0 and out.entropy[:, 3:].abs().max() == 0
    assert (out.logprobs[:, :3] < 0).all() and out.values.shape == (4, 5)
    out.values.sum().backward()
    # The value loss trains the head alone: the GRU the policy reads gets no gradient from it (formula_ppo.py).
    assert policy.value_head.weight.grad.abs().sum() > 0 and policy.cell.weight_hh.grad is None


def test_unlabelled_concepts_and_disallowed_operators_never_appear():
    policy, (pooled, _, fired) = make(), items(600, seed=2)
    allowed = torch.rand(N_CONCEPTS, generator=torch.Generator().manual_seed(3)) < 0.5
    cfg = FormulaConfig(max_literals=4, max_depth=2, operators=["and", "not"])
    out = sample(policy, pooled, cfg, allowed, fired, 2.0, torch.Generator().manual_seed(0))
    concept_tokens = out.tokens[(out.tokens >= 0) & (out.tokens < N_CONCEPTS)]
    assert allowed[concept_tokens].all()
    assert not (out.tokens == policy.vocab.OR).any()
    assert set().union(*(operators_used(f) for f in out.formulas)) == {"and", "not"}


def test_an_item_without_a_true_formula_is_refused_by_row():
    pooled, _, fired = items(3)
    fired[1] = False
    with pytest.raises(FormulaError, match="item 1: no allowed concept fired"):
        sample(make(), pooled, FormulaConfig(2, 1, ["and", "or"]), fired=fired)


# --- warm start --------------------------------------------------------------------------------------------------

def test_greedy_conjunction_keeps_the_fired_top_k_in_rank_order():
    logits = torch.tensor([0.9, 0.1, 0.8, 0.7, 0.6, 0.05, 0.5, 0.0])
    fired = torch.tensor([True, False, False, True, True, True, False, False])
    allowed = torch.ones(8, dtype=torch.bool)
    assert greedy_conjunction(logits, fired, allowed, 4) == And((Literal(0), Literal(3), Literal(4)))
    allowed[0] = False  # unlabelled: skipped, and c6 enters the top 4
    assert greedy_conjunction(logits, fired, allowed, 4) == And((Literal(3), Literal(4)))
    assert greedy_conjunction(logits, fired, allowed, 1) == Literal(3), "c2 did not fire: the best fired concept"
    fired_none_top = torch.tensor([False, True, False, False, False, True, False, False])
    assert greedy_conjunction(logits, fired_none_top, allowed, 3) == Literal(1), "the best-pooled fired concept"
    with pytest.raises(FormulaError, match="no allowed concept fired"):
        greedy_conjunction(logits, torch.zeros(8, dtype=torch.bool), allowed, 3)


def test_warm_start_reproduces_the_greedy_conjunctions():
    cfg, k = FormulaConfig(max_literals=4, max_depth=3), 4
    encoder = ConceptEncoder(D, N_CONCEPTS, k=3, generator=torch.Generator().manual_seed(0))
    activations = [torch.randn(3, D, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    pooled = pooled_inputs(encoder, activations)
    active = torch.stack([torch.zeros(3, N_CONCEPTS, dtype=torch.bool).scatter(1, encoder(a).top_indices, True)
                          for a in activations])
    fired = active.any(1)
    allowed = torch.ones(N_CONCEPTS, dtype=torch.bool)
    allowed[[1, 7]] = False
    targets = [greedy_conjunction(row, f, allowed, k) for row, f in zip(encoder.W_enc(pooled), fired)]
    assert any(isinstance(t, And) for t in targets) and all(is_true(t, a) for t, a in zip(targets, active))
    torch.manual_seed(0)
    policy = FormulaPolicy(D, N_CONCEPTS, SMALL, encoder.W_enc)
    policy.fit_logit_scale(pooled, allowed)
    losses = warm_start(policy, pooled, targets, cfg, steps=60, allowed=allowed, fired=fired)
    assert losses[-1] < 0.05 * losses[0]
    greedy = sample(policy, pooled, cfg, allowed, fired, temperature=0.0)
    assert [to_id_text(f) for f in greedy.formulas] == [to_id_text(t) for t in targets]
    reference = frozen_copy(policy)
    assert not any(p.requires_grad for p in reference.parameters())
    assert torch.equal(log_probs(reference, pooled, greedy.tokens, cfg, allowed, fired),
                       log_probs(policy, pooled, greedy.tokens, cfg, allowed, fired).detach())


def test_warm_start_refuses_a_target_the_masks_forbid():
    pooled, _, fired = items(2)
    fired[0, 2], fired[0, 3] = True, False
    cfg = FormulaConfig(max_literals=2, max_depth=2)
    with pytest.raises(FormulaError, match="warm-start target 0 cannot be sampled: token c3 at position 2"):
        warm_start(make(), pooled, [And((Literal(2), Literal(3))), Literal(int(fired[1].nonzero()[0]))], cfg,
                   steps=1, fired=fired)
    with pytest.raises(FormulaError, match="warm-start target 1 cannot be sampled"):
        warm_start(make(), pooled, [Literal(2), Or((Literal(0), Not(Literal(1)), Literal(2)))], cfg, steps=1)


def test_a_concept_is_written_once_unless_nothing_else_is_allowed():
    pooled, active, fired = items(400, seed=4)
    cfg = FormulaConfig(max_literals=4, max_depth=2)
    out = sample(make(), pooled, cfg, fired=fired, temperature=2.0, generator=torch.Generator().manual_seed(1))
    for tokens in out.tokens.tolist():
        written = [t for t in tokens if 0 <= t < N_CONCEPTS]
        assert len(written) == len(set(written))
    # One allowed concept, an AND that must be true, no depth left for another operator: the repeat is the only
    # way on, so it is allowed.
    allowed = torch.zeros(N_CONCEPTS, dtype=torch.bool)
    allowed[5] = True
    fired = torch.zeros(1, N_CONCEPTS, dtype=torch.bool)
    fired[0, 5] = True
    policy, f, flat = make(), And((Literal(5), Literal(5))), FormulaConfig(max_literals=4, max_depth=1)
    assert torch.isfinite(log_probs(policy, pooled[:1], torch.tensor([encode(f, policy.vocab)]), flat, allowed,
                                    fired)).all()
    with pytest.raises(FormulaError, match="row 0 repeats concept c5 at position 2"):
        log_probs(policy, pooled[:1], torch.tensor([encode(And((Literal(5), Literal(5))), policy.vocab)]), cfg)
    repeats = FormulaPolicy(D, N_CONCEPTS, FormulaPolicyConfig(hidden=32, embed=16, allow_repeats=True))
    assert torch.isfinite(log_probs(repeats, pooled[:1], torch.tensor([encode(f, policy.vocab)]), cfg)).all()


def test_decode_of_sampled_padding():
    policy = make()
    f = Or((Literal(0), Not(Literal(1))))
    assert decode(encode(f, policy.vocab) + [PAD, PAD], policy.vocab) == f
