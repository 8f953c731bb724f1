"""`pcdrl train`: GRPO on concept sets, read top to bottom.

    prepare: items, pooled activations (S runs once per item), labels, judges, policy
    loop:    rollout (sample G sets per item, judge, rewards) → advantages → μ clipped updates → log
             → atomic checkpoint (LoRA, optimizer, RNG, step, judge calibration cache)
    finish:  greedy held-out accuracy for every judge, pretrained vs RL

The data order is a pure function of (seed, step) and sampling uses torch's global RNG, which
the checkpoint saves, so `--resume` repeats the uninterrupted run exactly.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from behaviors.build import load_items
from configs.progress import progress_bar
from configs.rundir import RunDir
from configs.signals import GracefulStop, StopRequested
from models.backends import BackendError
from pcd.concepts import labelled_concepts, pooled_inputs, read_item_activations
from pcd.pretrain import batch_indices
from pcd.train_state import latest_checkpoint, load_train_state, save_train_state
from rewards import check_weights
from rl.losses import clipped_policy_loss, group_advantages
from rl.policy import ConceptSetPolicy, kl_estimate
from rl.rollout import rollout
from rl.sampling import plackett_luce_step_logprobs
from rl.train_config import RLTrainConfig
from simulators.judge import Judge
from simulators.metrics import expected_accuracy
from simulators.render import Explanation


def _items(cfg: RLTrainConfig, split: str, limit: int) -> list[dict]:
    items = [it for it in load_items(cfg.data, split=split) if it["family"] in cfg.families]
    if not items:
        raise ValueError(f"{cfg.data} has no '{split}' items in families {cfg.families}")
    return items[:limit] if limit else items


def _prepare(cfg: RLTrainConfig):
    from pcd.model import PCD

    train_items, eval_items = _items(cfg, "train", cfg.max_train_items), _items(cfg, "test", cfg.max_eval_items)
    pcd = PCD.from_pretrained(cfg.pcd)
    pcd.eval()
    labels = labelled_concepts(pcd.concepts)
    allowed = torch.zeros(pcd.encoder.n_concepts, dtype=torch.bool)
    allowed[list(labels)] = True

    def pool(items):
        acts = read_item_activations(pcd, [it["input_ids"] for it in items], [it["read_positions"] for it in items])
        with torch.no_grad():
            return pooled_inputs(pcd.encoder, acts)

    torch.manual_seed(cfg.seed)  # the LoRA init
    policy = ConceptSetPolicy(pcd.encoder, cfg.policy, allowed)
    if cfg.kl.quantize_reference:
        policy.quantize_reference()
    return train_items, eval_items, pool(train_items), pool(eval_items), labels, policy, pcd.config.k


def greedy_accuracy(policy, pooled, items, labels, judge: Judge) -> float:
    chosen = policy.greedy(pooled)
    answers = judge.answer([it["question"] for it in items], [it["options"] for it in items],
                           [Explanation(labels=tuple(labels[c] for c in row)) for row in chosen.tolist()])
    return sum(expected_accuracy(s, it["answer"]) for s, it in zip(answers.scores, items)) / len(items)


def _update(policy, optimizer, pooled, out, cfg: RLTrainConfig) -> dict:
    """μ clipped updates on one rollout; rows with a non-finite reward are left out and counted."""
    g = cfg.grpo
    rewards = out.reward.total.float().nan_to_num(0.0)
    advantages = group_advantages(rewards, g.group_size, g.scale)
    mask = out.reward.finite.float().unsqueeze(1).expand_as(out.old_logprobs)
    repeated = pooled[out.item_rows]
    for _ in range(g.updates_per_batch):
        logprobs = plackett_luce_step_logprobs(policy.logits(repeated), out.chosen, policy.config.temperature)
        kl = kl_estimate(logprobs, out.ref_logprobs, cfg.kl.estimator) if cfg.kl.beta else None
        stats = clipped_policy_loss(logprobs, out.old_logprobs, advantages, mask, g.loss_type, g.clip_low,
                                    g.clip_high, kl, cfg.kl.beta)
        optimizer.zero_grad(set_to_none=True)
        stats.loss.backward()
        optimizer.step()
    return {"loss": stats.loss.item(), "clip_fraction": stats.clip_fraction, "kl": stats.kl,
            **out.reward.log_record()}


def _check_same_config(info: dict, cfg: RLTrainConfig, checkpoint: Path) -> None:
    saved, now = info.get("config", {}), asdict(cfg)
    # `steps` may grow (train a finished run longer: the learning rate is constant); `threads` is not the run.
    differ = sorted(k for k in set(saved) | set(now) if k not in ("threads", "steps") and saved.get(k) != now.get(k))
    if differ:
        raise ValueError(f"{checkpoint} was made with a different config (fields: {', '.join(differ)}); "
                         "resume with the same config, or start a new --out")


def train(cfg: RLTrainConfig, out: str | Path, resume: bool = False) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.time()
    reward_functions = check_weights(cfg.rewards)
    run = RunDir(out, cfg, command="pcdrl train")
    train_items, eval_items, pooled_train, pooled_eval, labels, policy, pcd_k = _prepare(cfg)
    judge = Judge(cfg.judge)
    optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=cfg.lr)
    start, info = 0, {}
    checkpoint = latest_checkpoint(run.checkpoints) if resume else None
    if checkpoint is not None:
        info = load_train_state(checkpoint, policy.head, optimizer)
        _check_same_config(info, cfg, checkpoint)
        judge.load_calibration_state(info["judge_calibration"])
        start = info["step"]
    else:
        torch.manual_seed(cfg.seed + 1)  # the sampling stream
    with GracefulStop() as stop, progress_bar() as bar:
        task = bar.add_task("GRPO", total=cfg.steps, completed=start, status="")
        for step in range(start, cfg.steps):
            # The data position is a pure function of (seed, step), as in pretraining: resume needs no sampler.
            rows = batch_indices(len(train_items), cfg.items_per_step, step, cfg.seed).tolist()
            rng_before = torch.get_rng_state()
            try:
                out_ = rollout(policy, pooled_train[rows], [train_items[r] for r in rows], labels, judge,
                               cfg.rewards, cfg.grpo.group_size, None, reward_functions, pcd_k)
            except BackendError as err:
                # The backend has already retried. Save the state as it was before this step's sampling,
                # so that --resume repeats this step exactly once the judge is back.
                torch.set_rng_state(rng_before)
                save_train_state(run.checkpoints, step, policy.head, optimizer,
                                 {"config": asdict(cfg), "judge_calibration": judge.calibration_state()})
                raise BackendError(f"the judge failed at step {step + 1} ({err}); a checkpoint of step {step} is "
                                   f"saved: fix the judge, then rerun with --resume --out {run.path}") from err
            metrics = _update(policy, optimizer, pooled_train[rows], out_, cfg)
            done = step + 1
            run.log({"step": done, **metrics})
            bar.update(task, completed=done, status=f"reward {metrics['reward/total/mean']:.3f}")
            if done % cfg.checkpoint_every == 0 or done == cfg.steps or stop.requested:
                save_train_state(run.checkpoints, done, policy.head, optimizer,
                                 {"config": asdict(cfg), "judge_calibration": judge.calibration_state()})
            if stop.requested and done < cfg.steps:
                raise StopRequested(f"stopped at step {done}; continue with: pcdrl train ... --out {run.path} --resume")
    summary = _finish(cfg, policy, pooled_eval, eval_items, labels, judge, time.time() - started)
    run.write_summary(summary)
    run.close()
    return summary


def _finish(cfg, policy, pooled_eval, eval_items, labels, judge, wall: float) -> dict:
    """Greedy held-out accuracy before (adapter off) and after RL, for the training and held-out judges."""
    summary = {"heldout_accuracy_pretrained": {}, "heldout_accuracy_rl": {}, "n_eval_items": len(eval_items)}
    judges = [judge] + [Judge(j) for j in cfg.heldout_judges]
    for j in judges:
        summary["heldout_accuracy_rl"][j.name] = greedy_accuracy(policy, pooled_eval, eval_items, labels, j)
        with policy.head.disable_adapter():  # only to read the pretrained policy; the reference is a separate copy
            summary["heldout_accuracy_pretrained"][j.name] = greedy_accuracy(policy, pooled_eval, eval_items, labels, j)
    summary["wall_seconds"] = round(wall, 1)
    return summary
