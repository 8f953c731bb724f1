import torch

from pcdrl.pcd.encoder import ConceptEncoder


def make_encoder(d=16, m=64, k=4, seed=0):
    return ConceptEncoder(d, m, k, generator=torch.Generator().manual_seed(seed))


def test_topk_keeps_exactly_k_concepts_per_token():
    encoder = make_encoder(k=5)
    out = encoder(torch.randn(3, 7, 16))
    assert out.top_indices.shape == (3, 7, 5)
    # k distinct concepts per token, and they are the k largest pre-activations.
    assert all(len(set(row.tolist())) == 5 for row in out.top_indices.reshape(-1, 5))
    kth = out.pre_acts.topk(5, dim=-1).values[..., -1:]
    assert torch.all(out.top_values >= kth)
    # The soft token is W_emb applied to a vector with exactly k non-zeros.
    sparse = torch.zeros_like(out.pre_acts).scatter(-1, out.top_indices, out.top_values)
    assert int((sparse != 0).sum(-1).max()) == 5
    torch.testing.assert_close(out.soft_tokens, encoder.W_emb(sparse))


def test_init_follows_the_paper():
    encoder = make_encoder()
    torch.testing.assert_close(encoder.W_enc.weight.norm(dim=1), torch.ones(64))
    torch.testing.assert_close(encoder.W_emb.weight, encoder.W_enc.weight.T)
    assert torch.count_nonzero(encoder.W_enc.bias) == 0


def test_fit_input_stats_centres_and_scales_to_target_norm():
    encoder = make_encoder()
    acts = 50 + 10 * torch.randn(200, 16)
    encoder.fit_input_stats(acts, target_norm=3.0)
    normed = encoder.normalize(acts)
    assert normed.mean(0).abs().max() < 1e-3
    assert abs(normed.norm(dim=1).mean().item() - 3.0) < 1e-3


def test_aux_loss_revives_a_concept_forced_dead():
    torch.manual_seed(0)
    encoder = make_encoder(d=16, m=32, k=2)
    acts = torch.randn(256, 16)
    dead_concept = 7
    with torch.no_grad():  # point the concept away from every activation: it can never win a top-k
        encoder.W_enc.bias[dead_concept] = -20.0
    assert dead_concept not in encoder(acts).top_indices.unique().tolist()
    encoder.tokens_since_fired.fill_(0)
    encoder.tokens_since_fired[dead_concept] = 10_000
    dead = encoder.dead_mask(dead_after_tokens=1000)
    assert dead.tolist().count(True) == 1

    optimizer = torch.optim.Adam(encoder.parameters(), lr=0.5)
    for _ in range(60):
        out = encoder(acts)
        loss = encoder.aux_loss(out.pre_acts, dead, k_aux=4, coef=1e-4)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert dead_concept in encoder(acts).top_indices.unique().tolist()


def test_aux_loss_is_zero_without_dead_concepts_and_counts_usage():
    encoder = make_encoder(m=8, k=2)
    out = encoder(torch.randn(5, 16))
    assert encoder.aux_loss(out.pre_acts, torch.zeros(8, dtype=torch.bool), 4, 1.0).item() == 0.0
    encoder.tokens_since_fired.fill_(100)
    encoder.record_usage(out.top_indices)
    fired = set(out.top_indices.reshape(-1).tolist())
    for concept in range(8):
        expected = 0 if concept in fired else 105
        assert encoder.tokens_since_fired[concept].item() == expected
