import pytest
import torch

from pcdrl.models.backends import BackendConfig
from pcdrl.pcd.encoder import ConceptEncoder
from pcdrl.rl.losses import group_advantages
from pcdrl.pcd.concepts import pooled_inputs
from pcdrl.rl.policy import ConceptSetPolicy, PolicyConfig
from pcdrl.rl.critic import ValueHead
from pcdrl.rl.rollout import rollout
from pcdrl.simulators.config import JudgeConfig
from pcdrl.simulators.judge import Judge
from pcdrl.simulators.render import Explanation


def test_rollout_with_a_real_tiny_judge(tiny_model_dir):
    torch.manual_seed(0)
    encoder = ConceptEncoder(16, 24, k=4, generator=torch.Generator().manual_seed(0))
    policy = ConceptSetPolicy(encoder, PolicyConfig(k=3))
    labels = {c: f"concept number {c}" for c in range(24)}
    items = [{"question": "Will it refuse?", "options": ["Yes", "No"], "answer": 0},
             {"question": "Which next?", "options": ["abc", "de", "fgh"], "answer": 2}]
    pooled = pooled_inputs(encoder, [torch.randn(4, 16), torch.randn(2, 16)])
    judge = Judge(JudgeConfig(backend=BackendConfig(model=tiny_model_dir)))
    out = rollout(policy, pooled, items, labels, judge, {"judge_logprob": 1.0, "fidelity": 0.5}, group_size=4,
                  generator=torch.Generator().manual_seed(0), top_k_active=4)
    assert out.item_rows.tolist() == [0, 0, 0, 0, 1, 1, 1, 1] and out.chosen.shape == (8, 3)
    assert torch.allclose(out.old_logprobs, out.ref_logprobs), "at step 0 the policy is the reference"
    assert out.reward.finite.all() and set(out.reward.terms) == {"judge_logprob", "fidelity"}
    assert all(abs(sum(p) - 1) < 1e-6 for p in out.answers.probs)
    advantages = group_advantages(out.reward.total.float(), 4)
    assert advantages.view(2, 4).sum(1).abs().max() < 1e-3, "advantages are centred per group"
    assert ValueHead(16)(pooled).shape == (2,)


def test_rollout_scores_only_the_true_option_when_no_term_needs_the_others(tiny_model_dir):
    """judge_true_pmi with terms that do not read the judge: one option per row is scored, and each row's
    reward is exactly the judge's calibrated score of its true option under full scoring."""
    encoder = ConceptEncoder(16, 24, k=4, generator=torch.Generator().manual_seed(0))
    policy = ConceptSetPolicy(encoder, PolicyConfig(k=3))
    labels = {c: f"concept number {c}" for c in range(24)}
    items = [{"question": "Which next?", "options": ["abc", "de", "fghij"], "answer": 2},
             {"question": "Will it refuse?", "options": ["Yes", "No"], "answer": 0}]
    pooled = pooled_inputs(encoder, [torch.randn(4, 16), torch.randn(2, 16)])
    judge = Judge(JudgeConfig(backend=BackendConfig(model=tiny_model_dir)))
    calls = []
    score_options = judge.backend.score_options
    judge.backend.score_options = lambda p, o: calls.append(o) or score_options(p, o)
    out = rollout(policy, pooled, items, labels, judge, {"judge_true_pmi": 1.0, "sparsity": 0.1}, group_size=2,
                  generator=torch.Generator().manual_seed(0))
    explained = calls[-1]  # the last call scores the explained prompts (the first ones fill the calibration cache)
    assert [len(o) for o in explained] == [1] * 4 and out.answers.only == [2, 2, 0, 0]
    full = judge.answer([items[r]["question"] for r in out.item_rows.tolist()],
                        [items[r]["options"] for r in out.item_rows.tolist()],
                        [Explanation(labels=tuple(labels[c] for c in row)) for row in out.chosen.tolist()])
    true_scores = [s[a] for s, a in zip(full.scores, out.answers.only)]
    assert out.reward.terms["judge_true_pmi"].tolist() == true_scores
    assert out.reward.total.tolist() == pytest.approx([s - 0.3 for s in true_scores])
    with_probs = rollout(policy, pooled, items, labels, judge, {"judge_true_pmi": 1.0, "judge_correct": 0.0},
                         group_size=2, generator=torch.Generator().manual_seed(0))
    assert with_probs.answers.only is None and [len(o) for o in calls[-1]] == [3, 3, 2, 2]
