import pytest
import torch

from pcdrl.pcd.encoder import ConceptEncoder
from pcdrl.pcd.concepts import pooled_inputs
from pcdrl.rl.policy import ConceptSetPolicy, PolicyConfig, kl_estimate


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
    assert names and all("lora_" in n or n.endswith(".offset") for n in names) and any(n.endswith(".offset") for n in names)
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


def test_pretrained_block_restores_the_starting_policy_and_then_the_trained_one():
    encoder, policy = make()
    pooled = pooled_inputs(encoder, [torch.randn(3, 16) for _ in range(4)])
    start = policy.logits(pooled).detach()
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=0.1)
    chosen = policy.sample(pooled, torch.Generator().manual_seed(0))
    for _ in range(3):
        optimizer.zero_grad()
        (-policy.logprob(pooled, chosen).mean()).backward()
        optimizer.step()
    trained = policy.logits(pooled).detach()
    assert policy.offset.abs().sum() > 0 and not torch.allclose(trained, start)
    with policy.pretrained():
        assert torch.allclose(policy.logits(pooled), start, atol=1e-6)
    assert torch.equal(policy.logits(pooled).detach(), trained)


def test_logit_scale_standardises_the_pretrained_logits():
    encoder, policy = make()
    pooled = pooled_inputs(encoder, [torch.randn(3, 16) for _ in range(6)])
    policy.fit_logit_scale(pooled)
    logits = policy.reference_logits(pooled)[:, policy.allowed]
    assert abs(logits.std(dim=1).mean().item() - 1.0) < 1e-4
    masked = policy.reference_head(pooled).masked_fill(~policy.allowed, float("-inf"))
    assert torch.equal(policy.greedy(pooled), masked.topk(policy.config.k).indices), "scaling never changes the ranking"


@pytest.mark.real_model
def test_int8_reference_keeps_the_kl_on_the_real_model():
    """The default SmolLM2 PCD's encoder (2048 concepts over 576 dims): KL to the int8 reference matches the
    exact one within the tolerance scripts/bench_quantized_kl.py states (0.01 nats per explanation)."""
    from pcdrl.pcd.config import PCDConfig
    from pcdrl.pcd.model import PCD
    from pcdrl.rl.sampling import plackett_luce_step_logprobs

    pcd = PCD.create(PCDConfig(lora_dropout=0.0), seed=0).eval()
    texts = ["The capital of France is Paris.", "def add(a, b):\n    return a + b", "I'm sorry, but I can't help."]
    acts = [pcd.read_activations(pcd.tokenizer(t, return_tensors="pt").input_ids)[0] for t in texts]
    pcd.encoder.fit_input_stats(torch.cat(acts), pcd.embedding_norm())
    policy = ConceptSetPolicy(pcd.encoder, PolicyConfig(k=8))
    pooled = pooled_inputs(pcd.encoder, acts).repeat_interleave(16, dim=0)
    policy.fit_logit_scale(pooled)
    with torch.no_grad():
        for name, p in policy.head.named_parameters():
            if "lora_B" in name:
                p.copy_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    chosen = policy.sample(pooled, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logprobs = plackett_luce_step_logprobs(policy.logits(pooled), chosen, policy.config.temperature)
        exact = plackett_luce_step_logprobs(policy.reference_logits(pooled), chosen, policy.config.temperature)
        policy.quantize_reference()
        int8 = plackett_luce_step_logprobs(policy.reference_logits(pooled), chosen, policy.config.temperature)
    kl_exact, kl_int8 = kl_estimate(logprobs, exact).sum(1), kl_estimate(logprobs, int8).sum(1)
    assert kl_exact.mean() > 0.02, "the nudged policy is measurably away from the reference"
    assert (kl_int8.mean() - kl_exact.mean()).abs() < 0.01
