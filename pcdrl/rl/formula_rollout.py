"""GRPO over whole formulas (`policy.kind: formulas`): set-up, rollout, the token-level loss, and the logs.

    set-up:  each item's `fired` vector (the encoder's top-k at its read positions) → the formula policy over the
             pooled rows → warm start to the greedy conjunctions → a frozen copy of it, the KL reference
    rollout: G formulas per item (masked by the grammar, and by truth with formula.truth=mask) → `to_text` with
             labels → the same judge and reward terms as concept sets, plus each formula's size and truth
    update:  `updates.grpo_update` with `formula_policy_loss`: group-normalised advantages, the clipped ratio per
             token, β·KL per token to the warm start (PPO with GAE takes the same rollout: `rl/formula_ppo.py`)

The ratio is clipped per token, as GRPO does for text and as the concept path does per pick. A ratio over the
whole formula (the product of its tokens' ratios) leaves the clip range after a few tokens, so long formulas would
lose their gradient first; per token, the clip means the same at every length.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from pcdrl.explanations import FormulaError, canonical, concepts, depth, fired_batch, holds_each, operators_used, size
from pcdrl.explanations import to_id_text, to_text
from pcdrl.rewards import CombinedReward, RewardBatch, check_weights, combine
from pcdrl.rewards.registry import needs_every_option
from pcdrl.runtime.atomic import atomic_write_text
from pcdrl.rl.formula_policy import (FormulaPolicy, FormulaPolicyConfig, frozen_copy, greedy_conjunction, log_probs,
                                     sample, warm_start)
from pcdrl.rl.losses import clipped_policy_loss
from pcdrl.rl.policy import kl_estimate
from pcdrl.rl.timing import Stopwatch
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.simulators.judge import Judge, JudgeAnswers
from pcdrl.simulators.metrics import expected_accuracy
from pcdrl.simulators.render import Explanation


@dataclass
class FormulaSetup:
    policy: FormulaPolicy
    """The policy RL trains, warm-started."""
    reference: FormulaPolicy
    """A frozen copy of the warm-started policy: the KL reference and the "pretrained" row of the summary."""
    cfg: RLTrainConfig
    allowed: torch.Tensor
    """[n_concepts] bool: the labelled concepts, the only ones a formula may name (the judge reads labels)."""
    fired_train: torch.Tensor
    """[N_train, n_concepts] bool: which concepts are in the encoder's top-k at some read position of each item."""
    fired_eval: torch.Tensor
    """The same for the held-out items."""
    warm_start: dict
    """How the warm start went: items, skipped items, final loss, greedy accuracy on its targets."""

    def masks(self, fired: torch.Tensor) -> torch.Tensor | None:
        """What the grammar's truth mask reads: the items' fired vectors with formula.truth=mask, else nothing."""
        return fired if self.cfg.formula.truth == "mask" else None


def items_fired(pcd, activations: list[torch.Tensor]) -> torch.Tensor:
    """bool [N, n_concepts]: each item's concepts in the encoder's top-k at any of its read positions (the truth
    definition, docs/formulas.md)."""
    device = pcd.encoder.W_enc.weight.device
    with torch.no_grad():
        tops = [pcd.encoder(a.to(device)).top_indices.cpu() for a in activations]
    return fired_batch(tops, pcd.encoder.n_concepts)


def _check_truth_possible(cfg: RLTrainConfig, fired: torch.Tensor, allowed: torch.Tensor, items: list[dict],
                          split: str) -> None:
    """With the truth mask, an item where no labelled concept fired has a true formula only through NOT."""
    f = cfg.formula
    if f.truth != "mask" or ("not" in f.operators and f.max_depth >= 1):
        return
    empty = [items[i]["id"] for i in range(len(items)) if not (fired[i] & allowed).any()]
    if empty:
        raise ValueError(f"no labelled concept fired on {len(empty)} {split} item(s) (first: {empty[0]}), so no "
                         f"formula without NOT is true on them; add 'not' to formula.operators (with "
                         f"formula.max_depth >= 1), or set formula.truth=reward")


def prepare_formulas(cfg: RLTrainConfig, labelled, train, held_out, train_items, eval_items) -> FormulaSetup:
    """The formula policy over the pooled rows, warm-started to each training item's greedy conjunction.
    ``train``/``held_out`` are `EncodedItems`. The caller seeds torch first (the policy's init)."""
    encoder = labelled.pcd.encoder
    allowed = labelled.allowed.cpu()
    fired_train, fired_eval = items_fired(labelled.pcd, train.activations), items_fired(labelled.pcd, held_out.activations)
    _check_truth_possible(cfg, fired_train, allowed, train_items, "train")
    _check_truth_possible(cfg, fired_eval, allowed, eval_items, "test")
    policy = build_formula_policy(cfg, encoder, train.pooled.shape[1]).to(train.pooled.device)
    policy.fit_logit_scale(train.pooled, allowed.to(train.pooled.device))
    setup = FormulaSetup(policy, policy, cfg, allowed, fired_train, fired_eval, {})
    setup.warm_start = _warm_start(setup, train.pooled)
    setup.reference = frozen_copy(policy)
    return setup


def build_formula_policy(cfg: RLTrainConfig, encoder, d_model: int) -> FormulaPolicy:
    """A fresh formula policy for ``cfg`` over the PCD ``encoder`` (its W_enc is the frozen concept head)."""
    f = cfg.formula
    return FormulaPolicy(d_model, encoder.n_concepts, FormulaPolicyConfig(hidden=f.hidden, concept_rank=f.concept_rank),
                         concept_head=encoder.W_enc)


def load_formula_policy(cfg: RLTrainConfig, encoder, d_model: int, checkpoint: Path) -> FormulaPolicy:
    """The RL formula policy of a `pcdrl train` checkpoint, for evaluation. The checkpoint holds every trainable
    tensor (under `policy.`) and the logit scale; the concept head is the frozen W_enc, so no warm start is needed."""
    from safetensors.torch import load_file

    from pcdrl.pcd.train_state import load_trainable_state

    policy = build_formula_policy(cfg, encoder, d_model).to(encoder.W_enc.weight.device)
    state = {k: v for k, v in load_file(Path(checkpoint) / "trainable.safetensors").items()
             if k.startswith(("policy.", "buffer::"))}
    try:
        load_trainable_state(torch.nn.ModuleDict({"policy": policy}), state, {"logit_scale": policy.logit_scale})
    except (KeyError, RuntimeError) as err:
        raise ValueError(f"{checkpoint}: its tensors do not fit the formula policy built from the run's config "
                         f"({err}); was the checkpoint made by another version of pcdrl?") from None
    return policy.eval()


def conjunction_size(cfg: RLTrainConfig) -> int:
    """How many concepts the warm start's greedy conjunctions keep at most: policy.k, capped by
    formula.max_literals; one without AND (a conjunction needs AND for more than one literal)."""
    f = cfg.formula
    return min(cfg.policy.k, f.max_literals) if "and" in f.operators else 1


def _warm_start(setup: FormulaSetup, pooled: torch.Tensor) -> dict:
    """Teach the policy today's greedy concept set, as a true conjunction, on every training item that has one."""
    cfg, f = setup.cfg, setup.cfg.formula
    k = conjunction_size(cfg)
    with torch.no_grad():
        logits = setup.policy.concept_head(pooled).cpu()
    rows, targets = [], []
    for i in range(len(pooled)):
        try:
            targets.append(greedy_conjunction(logits[i], setup.fired_train[i], setup.allowed, k))
            rows.append(i)
        except FormulaError:  # no labelled concept fired on it: it has no true conjunction to imitate
            pass
    record = {"items": len(rows), "skipped_items": len(pooled) - len(rows), "steps": f.warm_start_steps}
    if not rows or not f.warm_start_steps:
        return record
    fired = setup.masks(setup.fired_train[rows])
    losses = warm_start(setup.policy, pooled[rows], targets, f, f.warm_start_steps, f.warm_start_lr, setup.allowed,
                        fired)
    greedy = sample(setup.policy, pooled[rows], f, setup.allowed, fired, temperature=0).formulas
    record.update(final_loss=round(losses[-1], 6),
                  accuracy=sum(g == t for g, t in zip(greedy, targets)) / len(rows))
    return record


@dataclass
class FormulaRollout:
    item_rows: torch.Tensor
    """[N·G] which item each sample belongs to (groups are contiguous)."""
    tokens: torch.Tensor
    """[N·G, T] the sampled token sequences, PAD after END."""
    old_logprobs: torch.Tensor
    """[N·G, T] per-token log-probs under the sampling policy (0 on padding and forced tokens)."""
    ref_logprobs: torch.Tensor
    """[N·G, T] per-token log-probs under the warm-started policy (the KL reference)."""
    decisions: torch.Tensor
    """[N·G, T] bool: tokens that were a choice. A forced token (`)` when the budget is spent, END) has log-prob 0
    under every policy; counting it would weight a formula's choices by how many forced tokens it has."""
    formulas: list
    """The sampled formulas."""
    texts: list[str]
    """What the judge read: `to_text(formula, labels)`."""
    true: torch.Tensor
    """[N·G] bool: whether each formula is true on its item."""
    truth_mask: torch.Tensor | None
    """[N·G, n_concepts] the fired vectors the truth mask read when sampling (None with formula.truth=reward): the
    update replays the same masks."""
    answers: JudgeAnswers
    reward: CombinedReward


def formula_rollout(setup: FormulaSetup, pooled: torch.Tensor, fired: torch.Tensor, items: list[dict],
                    labels: dict[int, str], judge: Judge, weights: dict[str, float], group_size: int,
                    generator: torch.Generator | None = None, reward_functions=None, top_k_active: int = 16,
                    watch: Stopwatch | None = None) -> FormulaRollout:
    """G formulas per item of ``pooled`` [N, d] (``fired`` [N, n] its items' fired vectors), judged and rewarded
    exactly as concept sets are (`rl/rollout.py`), with each formula's size and truth in the reward batch."""
    watch, f = watch or Stopwatch(), setup.cfg.formula
    rows = torch.arange(len(items)).repeat_interleave(group_size)
    repeated, fired_rows = pooled[rows], fired[rows]
    with watch("sample"), torch.no_grad():
        drawn = sample(setup.policy, repeated, f, setup.allowed, setup.masks(fired_rows), f.temperature, generator)
        ref = log_probs(setup.reference, repeated, drawn.tokens, f, setup.allowed, setup.masks(fired_rows),
                        f.temperature)
        reference_logits = setup.reference.concept_head(repeated).float()
    texts = [to_text(formula, labels) for formula in drawn.formulas]
    true = holds_each(drawn.formulas, fired_rows)
    sampled_items = [items[r] for r in rows.tolist()]
    reward_functions = reward_functions or check_weights(weights)
    answers_true = [it["answer"] for it in sampled_items]
    every_option = needs_every_option(reward_functions)
    with watch("judge"):
        answers = judge.answer([it["question"] for it in sampled_items], [it["options"] for it in sampled_items],
                               [Explanation(formula=t) for t in texts], only=None if every_option else answers_true)
    with watch("reward"):
        batch = RewardBatch(
            judge_probs=answers.probs if every_option else None, answers=answers_true,
            concepts=[list(concepts(formula)) for formula in drawn.formulas],
            concept_logits=reference_logits.masked_fill(~setup.allowed.to(reference_logits.device), -1e9),
            top_k_active=top_k_active, judge_true_scores=[s[a] for s, a in zip(answers.scores, answers_true)],
            judge_calibration=judge.cfg.calibration, explanation_size=[size(formula) for formula in drawn.formulas],
            formula_true=true.tolist(),
        )
        reward = combine(weights, batch, reward_functions)
    decisions = drawn.mask & (drawn.logprobs != 0)
    return FormulaRollout(rows, drawn.tokens, drawn.logprobs, ref, decisions, drawn.formulas, texts, true,
                          setup.masks(fired_rows), answers, reward)


def formula_policy_loss(setup: FormulaSetup):
    """The loss `updates.grpo_update` calls, for formulas: the clipped surrogate and β·KL per decision token."""

    def loss(policy, pooled_rows, out: FormulaRollout, advantages, cfg: RLTrainConfig, loss_type, clip_low, clip_high):
        f = cfg.formula
        mask = (out.decisions & out.reward.finite.unsqueeze(1)).float()
        logprobs = log_probs(policy, pooled_rows, out.tokens, f, setup.allowed, out.truth_mask, f.temperature)
        kl = kl_estimate(logprobs, out.ref_logprobs, cfg.kl.estimator) if cfg.kl.beta else None
        return clipped_policy_loss(logprobs, out.old_logprobs, advantages, mask, loss_type, clip_low, clip_high,
                                   kl, cfg.kl.beta)

    return loss


def formula_record(out: FormulaRollout) -> dict[str, float]:
    """What one step's formulas were like: size, depth, truth, operators, and how many distinct ones per item."""
    n = len(out.formulas)
    used = [operators_used(f) for f in out.formulas]
    groups = out.item_rows.tolist()
    distinct = {(g, canonical(f)) for g, f in zip(groups, out.formulas)}
    return {
        "formula/size/mean": sum(size(f) for f in out.formulas) / n,
        "formula/depth/mean": sum(depth(f) for f in out.formulas) / n,
        "formula/true_share": out.true.float().mean().item(),
        **{f"formula/uses_{op}": sum(op in u for u in used) / n for op in ("and", "or", "not")},
        "formula/distinct_per_item": len(distinct) / len(set(groups)),
    }


def log_formulas(path: Path, step: int, out: FormulaRollout, items: list[dict]) -> None:
    """Append every sampled formula of this step to formulas.jsonl: its item, id form, judge text, truth, reward."""
    with open(path, "a") as fh:
        for i, (row, formula) in enumerate(zip(out.item_rows.tolist(), out.formulas)):
            fh.write(json.dumps({"step": step, "item": items[row]["id"], "formula": to_id_text(formula),
                                 "text": out.texts[i], "true": bool(out.true[i]),
                                 "reward": float(out.reward.total[i])}) + "\n")


def keep_formulas_through(path: Path, step: int) -> None:
    """Keep only formulas.jsonl's records of steps up to ``step`` (the checkpoint a run resumes from): the steps
    after it are sampled again and would be logged twice. A torn last line (a kill mid-write) goes too. The file
    is rewritten atomically, so a kill now leaves either the old file or the trimmed one."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("step", step + 1) <= step:
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))


def greedy_formulas(policy: FormulaPolicy, setup: FormulaSetup, pooled: torch.Tensor, fired: torch.Tensor):
    """Each item's greedy formula (temperature 0), under the masks sampling uses."""
    return sample(policy, pooled, setup.cfg.formula, setup.allowed, setup.masks(fired), temperature=0).formulas


def formula_accuracies(judge: Judge, items: list[dict], formulas, labels: dict[int, str]) -> list[float]:
    """The judge's expected accuracy on each item when shown its formula."""
    answers = judge.answer([it["question"] for it in items], [it["options"] for it in items],
                           [Explanation(formula=to_text(f, labels)) for f in formulas])
    return [expected_accuracy(s, it["answer"]) for s, it in zip(answers.scores, items)]
