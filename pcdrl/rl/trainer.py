"""`pcdrl train`: GRPO or PPO on concept sets or on formulas (`policy.kind`), read top to bottom.

    prepare: items, pooled activations (S runs once per item), labels, judges, policy (+ critic for PPO)
    loop:    rollout (sample concept sets, judge, rewards) → advantages → μ clipped updates → log
             → atomic checkpoint (LoRA, critic, optimizer, RNG, step, judge calibration cache)
    finish:  greedy held-out accuracy for every judge, pretrained vs RL

With policy.kind=formulas, `rl/formula_rollout.py` prepares the formula policy (warm start, KL reference), samples
and judges formulas, and gives GRPO its per-token loss; `rl/formula_ppo.py` is token-level PPO with GAE over their
decision tokens. The loop, checkpoints and judges are the same.

The data order is a pure function of (seed, step) and sampling uses torch's global RNG, which
the checkpoint saves, so `--resume` repeats the uninterrupted run exactly.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from pcdrl.behaviors.build import load_items
from pcdrl.behaviors.encoded import encode_items, load_labelled_pcd
from pcdrl.explanations import holds_each, size
from pcdrl.runtime.config_loader import from_dict
from pcdrl.runtime.progress import progress_bar
from pcdrl.runtime.reporting import Reporter
from pcdrl.runtime.rundir import RunDir
from pcdrl.runtime.signals import GracefulStop, StopRequested
from pcdrl.models.backends import BackendError
from pcdrl.pcd.grounding import grounding_losses
from pcdrl.pcd.pretrain import batch_indices
from pcdrl.pcd.train_state import latest_checkpoint, load_train_state, save_train_state
from pcdrl.rewards import check_weights
from pcdrl.rl.critic import ValueHead
from pcdrl.rl.formula_ppo import formula_ppo_update, value_parameters
from pcdrl.rl.formula_rollout import (FormulaSetup, formula_accuracies, formula_policy_loss, formula_record,
                                      formula_rollout, greedy_formulas, keep_formulas_through, log_formulas,
                                      prepare_formulas)
from pcdrl.rl.policy import ConceptSetPolicy
from pcdrl.rl.rollout import rollout
from pcdrl.rl.timing import Stopwatch
from pcdrl.rl.train_config import RLTrainConfig
from pcdrl.rl.updates import grpo_update, ppo_update
from pcdrl.simulators.judge import Judge
from pcdrl.simulators.metrics import expected_accuracy
from pcdrl.simulators.render import Explanation


def _items(cfg: RLTrainConfig, split: str, limit: int) -> list[dict]:
    items = [it for it in load_items(cfg.data, split=split) if it["family"] in cfg.families]
    if not items:
        raise ValueError(f"{cfg.data} has no '{split}' items in families {cfg.families}")
    return items[:limit] if limit else items


@dataclass
class Prepared:
    train_items: list[dict]
    eval_items: list[dict]
    pooled_train: torch.Tensor
    """[N_train, d] each training item's mean normalised activation: all the policy ever sees."""
    pooled_eval: torch.Tensor
    labels: dict[int, str]
    policy: ConceptSetPolicy
    critic: ValueHead | None
    trainable: nn.Module
    """Everything the optimizer updates, under one module so that one checkpoint holds it."""
    pcd_k: int
    grounding: Callable[[list[int], torch.Tensor, torch.Tensor], torch.Tensor] | None
    """(the step's training rows, item_rows, chosen) -> the PCD decoder's loss per sampled row; only when
    the `grounding` reward is on (it keeps S in memory)."""
    formulas: FormulaSetup | None = None
    """With policy.kind=formulas: the formula policy (then also `policy`), its reference and the items' truth."""


def prepare(cfg: RLTrainConfig) -> Prepared:
    train_items, eval_items = _items(cfg, "train", cfg.max_train_items), _items(cfg, "test", cfg.max_eval_items)
    labelled = load_labelled_pcd(cfg.pcd)
    train, held_out = encode_items(labelled, train_items, cfg.data), encode_items(labelled, eval_items, cfg.data)
    torch.manual_seed(cfg.seed)  # the LoRA and critic init
    if cfg.policy.kind == "formulas":
        return _prepare_formulas(cfg, labelled, train, held_out, train_items, eval_items)
    policy = ConceptSetPolicy(labelled.pcd.encoder, cfg.policy, labelled.allowed)
    policy.fit_logit_scale(train.pooled)  # before quantizing: the scale comes from the exact pretrained weights
    if cfg.kl.quantize_reference:
        policy.quantize_reference()
    trainable = nn.ModuleDict({"policy": policy.head})
    critic = None
    if cfg.algorithm == "ppo":
        critic = ValueHead(train.pooled.shape[1], cfg.ppo.value_hidden)
        trainable["critic"] = critic
    grounding = _grounding_fn(labelled.pcd, train.activations, train_items) if cfg.rewards.get("grounding") else None
    return Prepared(train_items, eval_items, train.pooled, held_out.pooled, labelled.labels, policy, critic,
                    trainable, labelled.pcd.config.k, grounding)


def _prepare_formulas(cfg, labelled, train, held_out, train_items, eval_items) -> Prepared:
    setup = prepare_formulas(cfg, labelled, train, held_out, train_items, eval_items)
    return Prepared(train_items, eval_items, train.pooled, held_out.pooled, labelled.labels, setup.policy, None,
                    nn.ModuleDict({"policy": setup.policy}), labelled.pcd.config.k, None, setup)


def _grounding_fn(pcd, train_acts, train_items):
    """The `grounding` reward's input, computed here because it runs the PCD decoder (S with its adapter) on
    S's own output per sampled row; the reward term itself only reads the losses."""
    output_ids = [pcd.tokenizer(it["behaviour"], add_special_tokens=False)["input_ids"] for it in train_items]

    def losses(batch_rows: list[int], item_rows: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        acts = [train_acts[r] for r in batch_rows]
        return grounding_losses(pcd, acts, item_rows, chosen, [output_ids[r] for r in batch_rows])

    return losses


def _optimizer(cfg: RLTrainConfig, prep: Prepared) -> torch.optim.Optimizer:
    """The policy at lr, PPO's critic at ppo.value_lr. The formula policy's critic is its own value head: with
    GRPO it stays in the policy's group, where it never gets a gradient, so GRPO runs keep their optimizer layout."""
    critic = []
    if cfg.algorithm == "ppo":
        critic = value_parameters(prep.policy) if prep.formulas is not None else list(prep.critic.parameters())
    groups = [{"params": [p for p in prep.policy.trainable_parameters() if all(p is not c for c in critic)],
               "lr": cfg.lr}]
    if critic:
        groups.append({"params": critic, "lr": cfg.ppo.value_lr})
    return torch.optim.Adam(groups)


def set_accuracies(judge: Judge, items: list[dict], sets: torch.Tensor, labels: dict[int, str]) -> list[float]:
    """The judge's expected accuracy on each item when shown its row of concept ids as labels."""
    answers = judge.answer([it["question"] for it in items], [it["options"] for it in items],
                           [Explanation(labels=tuple(labels[c] for c in row)) for row in sets.tolist()])
    return [expected_accuracy(s, it["answer"]) for s, it in zip(answers.scores, items)]


def greedy_accuracy(policy, pooled, items, labels, judge: Judge) -> float:
    return sum(set_accuracies(judge, items, policy.greedy(pooled), labels)) / len(items)


# Fields that do not change the weights: `steps` may grow (train a finished run longer, the learning
# rate is constant), and the others only say where things run or what is reported.
RESUMABLE_CHANGES = ("threads", "steps", "report_to", "evaluate_pretrained", "heldout_judges", "max_eval_items")


def _check_same_config(info: dict, cfg: RLTrainConfig, checkpoint: Path) -> None:
    saved, now = info.get("config", {}), asdict(cfg)
    try:  # fields added since the checkpoint was made count at their defaults
        saved = asdict(from_dict(RLTrainConfig, saved, source=f"{checkpoint}"))
    except (ValueError, TypeError):
        pass
    differ = sorted(k for k in set(saved) | set(now) if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k))
    if differ:
        raise ValueError(f"{checkpoint} was made with a different config (fields: {', '.join(differ)}); "
                         "resume with the same config, or start a new --out")


def train(cfg: RLTrainConfig, out: str | Path, resume: bool = False) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.time()
    reward_functions = check_weights(cfg.rewards)
    run = RunDir(out, cfg, command="pcdrl train", may_differ=RESUMABLE_CHANGES)
    saved = latest_checkpoint(run.checkpoints) if resume else None  # a dangling pointer fails before S loads
    prep = prepare(cfg)
    judge = Judge(cfg.judge)
    optimizer = _optimizer(cfg, prep)
    buffers = {"logit_scale": prep.policy.logit_scale}

    def checkpoint(step: int) -> None:
        save_train_state(run.checkpoints, step, prep.trainable, optimizer,
                         {"config": asdict(cfg), "judge_calibration": judge.calibration_state()}, buffers)

    start = 0
    if saved is not None:
        info = load_train_state(saved, prep.trainable, optimizer, buffers)
        _check_same_config(info, cfg, saved)
        judge.load_calibration_state(info["judge_calibration"])
        start = info["step"]
    else:
        torch.manual_seed(cfg.seed + 1)  # the sampling stream
    if prep.formulas is not None:  # the steps after the checkpoint are sampled and logged again
        keep_formulas_through(run.path / "formulas.jsonl", start)
    reporter = Reporter(run.path, cfg.report_to, asdict(cfg), run_name=run.path.name, resume=saved is not None)
    with GracefulStop() as stop, progress_bar() as bar, reporter:
        loop_started = time.time()
        task = bar.add_task(cfg.algorithm.upper(), total=cfg.steps, completed=start, status="")
        for step in range(start, cfg.steps):
            # The data position is a pure function of (seed, step), as in pretraining: resume needs no sampler.
            rows = batch_indices(len(prep.train_items), cfg.items_per_step, step, cfg.seed).tolist()
            pooled_rows = prep.pooled_train[rows].repeat_interleave(cfg.samples_per_item, dim=0)
            grounding = (lambda item_rows, chosen: prep.grounding(rows, item_rows, chosen)) if prep.grounding else None
            watch, rng_before, step_started = Stopwatch(), torch.get_rng_state(), time.perf_counter()
            try:
                if prep.formulas is None:
                    out_ = rollout(prep.policy, prep.pooled_train[rows], [prep.train_items[r] for r in rows],
                                   prep.labels, judge, cfg.rewards, cfg.samples_per_item, None, reward_functions,
                                   prep.pcd_k, watch, grounding)
                else:
                    out_ = formula_rollout(prep.formulas, prep.pooled_train[rows], prep.formulas.fired_train[rows],
                                           [prep.train_items[r] for r in rows], prep.labels, judge, cfg.rewards,
                                           cfg.samples_per_item, None, reward_functions, prep.pcd_k, watch)
            except BackendError as err:
                # The backend has already retried. Save the state as it was before this step's sampling,
                # so that --resume repeats this step exactly once the judge is back.
                torch.set_rng_state(rng_before)
                checkpoint(step)
                raise BackendError(f"the judge failed at step {step + 1} ({err}); a checkpoint of step {step} is "
                                   f"saved: fix the judge, then rerun with --resume --out {run.path}") from err
            with watch("update"):
                if prep.formulas is not None:
                    metrics = formula_ppo_update(prep.formulas, optimizer, pooled_rows, out_, cfg) \
                        if cfg.algorithm == "ppo" else \
                        grpo_update(prep.policy, optimizer, pooled_rows, out_, cfg, formula_policy_loss(prep.formulas))
                    metrics.update(formula_record(out_))
                    log_formulas(run.path / "formulas.jsonl", step + 1, out_, [prep.train_items[r] for r in rows])
                elif cfg.algorithm == "grpo":
                    metrics = grpo_update(prep.policy, optimizer, pooled_rows, out_, cfg)
                else:
                    metrics = ppo_update(prep.policy, prep.critic, optimizer, pooled_rows, out_, cfg)
            done = step + 1
            metrics = {"step": done, **metrics, **out_.reward.log_record(), **watch.record(),
                       "time/step_s": round(time.perf_counter() - step_started, 4)}
            run.log(metrics)
            reporter.log(done, {k: v for k, v in metrics.items() if k != "step"})
            bar.update(task, completed=done, status=f"reward {metrics['reward/total/mean']:.3f}")
            if done % cfg.checkpoint_every == 0 or done == cfg.steps or stop.requested:
                checkpoint(done)
            if stop.requested and done < cfg.steps:
                raise StopRequested(f"stopped at step {done}; continue with: pcdrl train ... --out {run.path} --resume")
        train_seconds = time.time() - loop_started
        summary = _finish(cfg, prep, judge)
        summary.update(train_seconds=round(train_seconds, 1), wall_seconds=round(time.time() - started, 1))
        reporter.summary(summary)
    run.write_summary(summary)
    run.close()
    return summary


def _finish(cfg: RLTrainConfig, prep: Prepared, judge: Judge) -> dict:
    """Greedy held-out accuracy before (adapter off) and after RL, for the training and held-out judges."""
    summary = {"heldout_accuracy_rl": {}, "n_eval_items": len(prep.eval_items)}
    if cfg.evaluate_pretrained:
        summary["heldout_accuracy_pretrained"] = {}
    judges = [judge] + [Judge(j) for j in cfg.heldout_judges]
    if prep.formulas is not None:
        return _finish_formulas(cfg, prep, judges, summary)
    policy, args = prep.policy, (prep.pooled_eval, prep.eval_items, prep.labels)
    for j in judges:
        summary["heldout_accuracy_rl"][j.name] = greedy_accuracy(policy, *args, j)
        if cfg.evaluate_pretrained:
            with policy.pretrained():
                summary["heldout_accuracy_pretrained"][j.name] = greedy_accuracy(policy, *args, j)
    return summary


def _finish_formulas(cfg: RLTrainConfig, prep: Prepared, judges: list[Judge], summary: dict) -> dict:
    """As `_finish`, for formulas: the greedy formula of the RL policy and of the warm start ("pretrained") on the
    held-out items, with their size and truth."""
    setup = prep.formulas
    summary["warm_start"] = setup.warm_start
    policies = {"rl": setup.policy} | ({"pretrained": setup.reference} if cfg.evaluate_pretrained else {})
    for name, policy in policies.items():
        formulas = greedy_formulas(policy, setup, prep.pooled_eval, setup.fired_eval)
        true = [bool(t) for t in holds_each(formulas, setup.fired_eval)]
        summary[f"heldout_formulas_{name}"] = {"mean_size": sum(map(size, formulas)) / len(formulas),
                                               "true_share": sum(true) / len(true)}
        summary[f"heldout_accuracy_{name}"] = {
            j.name: sum(formula_accuracies(j, prep.eval_items, formulas, prep.labels)) / len(formulas) for j in judges}
    return summary
