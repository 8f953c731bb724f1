import pytest
import torch

from pcd.encoder import ConceptEncoder
from pcd.concepts import pooled_inputs
from rl.policy import ConceptSetPolicy, PolicyConfig, kl_estimate


def make(k=3, m=32, d=16, **kw):
    torch.manual_seed(0)
    encoder = ConceptEncoder(d, m, k=4, generator=torch.Generator().manual_seed(0))
    allowed = torch.ones(m, dtype=torch.bool)
    allowed[:4] = False
    return encoder, ConceptSetPolicy(encoder, PolicyConfig(k=k, **kw), allowed)


def test_pooling_equals_mean_of_per_position_logits():
    encoder, policy = make()
    acts = [torch.randn(5, 16), torch.randn(2, 16)]
    pooled = pooled_inputs(encoder, acts)
    for row, a in enumerate(acts):
        assert torch.allclose(policy.reference_logits(pooled)[row][4:], encoder.pre_activations(a).mean(0)[4:], atol=1e-5)


def test_starts_at_the_reference_and_trains_only_lora():
    encoder, policy = make()
    pooled = pooled_inputs(encoder, [torch.randn(3, 16) for _ in range(4)])
    chosen = policy.sample(pooled, torch.Generator().manual_seed(0))
    assert (chosen >= 4).all(), "unlabelled concepts are never sampled"
    assert torch.allclose(policy.logprob(pooled, chosen), policy.reference_logprob(pooled, chosen), atol=1e-6)
    names = [n for n, p in policy.head.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        (-policy.logprob(pooled, chosen).mean()).backward()
        optimizer.step()
    assert (policy.logprob(pooled, chosen) > policy.reference_logprob(pooled, chosen)).all()
    assert torch.equal(policy.reference_head.weight, encoder.W_enc.weight), "the reference never moves"
    kl = kl_estimate(policy.logprob(pooled, chosen), policy.reference_logprob(pooled, chosen))
    assert (kl >= 0).all() and kl.sum() > 0


def test_quantized_reference_keeps_logprobs_close():
    encoder, policy = make(m=256, d=64, temperature=1.0)
    pooled = pooled_inputs(encoder, [torch.randn(3, 64) for _ in range(8)])
    chosen = policy.sample(pooled, torch.Generator().manual_seed(0))
    exact = policy.reference_logprob(pooled, chosen)
    policy.quantize_reference()
    assert (policy.reference_logprob(pooled, chosen) - exact).abs().max() < 0.05


def test_kl_estimators():
    lp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -2.0])
    assert kl_estimate(lp, ref, "k1").tolist() == pytest.approx([0.5, 0.0])
    assert kl_estimate(lp, ref, "k3")[1].item() == 0.0 and kl_estimate(lp, ref, "k3")[0].item() > 0
    with pytest.raises(ValueError, match="kl estimator 'k2' is unknown"):
        kl_estimate(lp, ref, "k2")
