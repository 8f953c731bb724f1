"""`pcdrl pretrain`: train the encoder and the decoder's LoRA to predict suffixes from encoded middles.

The run has up to three phases, each a fresh model on the same data and step budget:
  concepts         the PCD itself (its checkpoint goes to RUN/pcd)
  no_concepts      control: the decoder reads zeros, so it can only learn the suffix distribution
  raw_activations  control: the decoder reads the un-bottlenecked activations
Comparing the three says how much of what S's activations carry survives the k-sparse bottleneck.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console

from pcdrl.runtime.atomic import atomic_write_json
from pcdrl.runtime.progress import progress_bar
from pcdrl.runtime.rundir import RunDir
from pcdrl.runtime.signals import GracefulStop, StopRequested
from pcdrl.models import load_model, load_tokenizer, resolve_model_path
from pcdrl.pcd.activation_cache import cached_activations
from pcdrl.pcd.activations import check_layer, read_residual_batched
from pcdrl.pcd.stats import bootstrap_ci
from pcdrl.pcd.config import PretrainRunConfig, TrainConfig
from pcdrl.pcd.corpus import Windows, build_windows
from pcdrl.pcd.model import PCD, SoftMode
from pcdrl.pcd.train_state import latest_checkpoint, load_train_state, save_train_state

console = Console(stderr=True)


@dataclass
class PhaseData:
    windows: Windows
    train_acts: torch.Tensor
    heldout_acts: torch.Tensor


def pretrain(cfg: PretrainRunConfig, out: str | Path, resume: bool = False) -> dict:
    started = time.time()
    run = RunDir(out, cfg, command="pcdrl pretrain")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    subject = load_model(cfg.pcd.subject_model)
    data, cache_hit, subject_loss = _prepare_data(cfg, subject)
    results: dict[str, dict] = {}
    with GracefulStop() as stop:
        for mode in ["concepts", *cfg.train.baselines]:
            results[mode], subject = _run_phase(mode, cfg, data, subject, run, resume, stop)
    summary = _summary(cfg, data, results, subject_loss, cache_hit, time.time() - started)
    run.write_summary(summary)
    run.close()
    return summary


# --- data ------------------------------------------------------------------------------------


def _prepare_data(cfg: PretrainRunConfig, subject) -> tuple[PhaseData, bool, float]:
    tokenizer = load_tokenizer(cfg.pcd.subject_model)
    windows = build_windows(cfg.corpus, cfg.window, tokenizer, seed=cfg.train.seed)
    check_layer(subject, cfg.pcd.read_layer)
    model_id = resolve_model_path(cfg.pcd.subject_model)
    hits = []

    def read(ids: torch.Tensor, name: str) -> torch.Tensor:
        def compute() -> torch.Tensor:
            with progress_bar() as bar:
                task = bar.add_task(f"reading S ({name})", total=len(ids), status="")
                return read_residual_batched(
                    subject, ids[:, windows.s_input], cfg.pcd.read_layer, windows.middle,
                    progress=lambda n: bar.advance(task, n),
                )

        acts, hit = cached_activations(
            model_id, cfg.pcd.read_layer, windows.middle, ids[:, windows.s_input], compute, cfg.train.cache_activations
        )
        hits.append(hit)
        return acts

    data = PhaseData(windows, read(windows.train, "train"), read(windows.heldout, "held-out"))
    subject_loss = _subject_suffix_loss(subject, windows, cfg.train.eval_windows)
    console.log(
        f"{len(windows.train)} train / {len(windows.heldout)} held-out windows of {cfg.window.total} tokens; "
        f"activation cache {'hit' if all(hits) else 'written'}"
    )
    return data, all(hits), subject_loss


@torch.no_grad()
def _subject_suffix_loss(subject, windows: Windows, n: int, batch_size: int = 32) -> float:
    """S's own loss on the suffix with the full prefix and middle in context: a reference point."""
    from pcdrl.pcd.decoder import IGNORE_INDEX, per_row_loss

    rows = windows.heldout[:n]
    losses = []
    for start in range(0, len(rows), batch_size):
        ids = rows[start : start + batch_size]
        labels = ids.clone()
        labels[:, : windows.suffix.start] = IGNORE_INDEX
        losses.append(per_row_loss(subject(input_ids=ids, use_cache=False).logits, labels))
    return torch.cat(losses).mean().item()


def batch_indices(n_rows: int, batch_size: int, micro_step: int, seed: int) -> torch.Tensor:
    """Rows of micro-batch ``micro_step``: a fresh permutation each epoch, a pure function of the step.

    Because the data position is derived from the step, resuming needs no sampler state.
    """
    per_epoch = max(1, n_rows // batch_size)
    epoch, position = divmod(micro_step, per_epoch)
    order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return order[position * batch_size : (position + 1) * batch_size]


def lr_factor(step: int, train: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio``. ``step`` counts optimizer steps."""
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return train.min_lr_ratio + (1 - train.min_lr_ratio) * cosine


# --- one phase -------------------------------------------------------------------------------


def _run_phase(
    mode: SoftMode, cfg: PretrainRunConfig, data: PhaseData, subject, run: RunDir, resume: bool, stop: GracefulStop
) -> tuple[dict, torch.nn.Module]:
    """Train one phase on ``subject``; return its result and S with the phase's adapter removed."""
    done_file = run.path / "phases" / f"{mode}.json"
    if resume and done_file.is_file():
        console.log(f"phase {mode}: already finished, skipped")
        return json.loads(done_file.read_text()), subject
    train = cfg.train
    pcd = PCD.create(cfg.pcd, subject=subject, seed=train.seed)
    pcd.encoder.fit_input_stats(data.train_acts[:1024], pcd.embedding_norm())
    if mode != "concepts":
        pcd.encoder.requires_grad_(False)
    optimizer = _optimizer(pcd, mode, train)
    folder = run.checkpoints / mode
    buffers = {f"encoder.{k}": v for k, v in pcd.encoder.named_buffers()}
    start = 0
    if resume and (checkpoint := latest_checkpoint(folder)) is not None:
        info = load_train_state(checkpoint, pcd, optimizer, buffers)
        _check_same_config(info, cfg, checkpoint)
        start = info["step"]
        console.log(f"phase {mode}: resumed from {checkpoint} (step {start})")

    last_eval = {}
    with progress_bar() as bar:
        task = bar.add_task(f"pretrain {mode}", total=train.steps, completed=start, status="")
        for step in range(start, train.steps):
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * lr_factor(step, train)
            metrics = _train_step(pcd, optimizer, mode, data, cfg, step)
            done = step + 1
            bar.update(task, completed=done, status=f"loss {metrics['loss']:.3f}")
            if done % train.log_every == 0:
                run.log({"phase": mode, "step": done, "lr": optimizer.param_groups[0]["lr"], **metrics})
            if done % train.eval_every == 0 or done == train.steps:
                last_eval = _evaluate(pcd, mode, data, cfg)
                run.log({"phase": mode, "step": done, "heldout_loss": last_eval["heldout_loss"]})
                console.log(f"phase {mode} step {done}: held-out loss {last_eval['heldout_loss']:.4f}")
            if done % train.checkpoint_every == 0 or done == train.steps or stop.requested:
                save_train_state(folder, done, pcd, optimizer, {"phase": mode, "config": asdict(cfg)}, buffers)
            if stop.requested and done < train.steps:
                raise StopRequested(f"stopped at {mode} step {done}; continue with: pcdrl pretrain ... --out {run.path} --resume")

    if not last_eval:  # resumed from a checkpoint taken at the final step
        last_eval = _evaluate(pcd, mode, data, cfg)
    result = {"mode": mode, "steps": train.steps, **last_eval}
    if mode == "concepts":
        result["dead_fraction"] = pcd.encoder.dead_mask(cfg.pcd.dead_after_tokens).float().mean().item()
        pcd.concepts = {"concepts": [], "usage": _usage_stats(pcd, data, cfg)}
        pcd.training_data = {"corpus": asdict(cfg.corpus), "window": asdict(cfg.window), "seed": cfg.train.seed}
        pcd.save_pretrained(run.path / "pcd")
    atomic_write_json(done_file, result)
    # S's own weights never train, so removing the LoRA layers gives back the pristine S for the next phase.
    return result, pcd.decoder.unload()


def _optimizer(pcd: PCD, mode: SoftMode, train: TrainConfig) -> torch.optim.Optimizer:
    decoder_params = [p for p in pcd.decoder.parameters() if p.requires_grad]
    groups = [{"params": decoder_params, "lr": train.lr}]
    if mode == "concepts":
        groups.append({"params": list(pcd.encoder.parameters()), "lr": train.encoder_lr or train.lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=train.weight_decay)
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    return optimizer


def _train_step(
    pcd: PCD, optimizer: torch.optim.Optimizer, mode: SoftMode, data: PhaseData, cfg: PretrainRunConfig, step: int
) -> dict:
    train, windows = cfg.train, data.windows
    pcd.train()
    total_loss = total_aux = 0.0
    for micro in range(train.grad_accum):
        rows = batch_indices(len(windows.train), train.batch_size, step * train.grad_accum + micro, train.seed)
        losses, encoded = pcd.suffix_loss(data.train_acts[rows], windows.train[rows, windows.suffix], mode)
        loss = losses.mean()
        aux = torch.zeros(())
        if encoded is not None:
            pcd.encoder.record_usage(encoded.top_indices)
            dead = pcd.encoder.dead_mask(cfg.pcd.dead_after_tokens)
            aux = pcd.encoder.aux_loss(encoded.pre_acts, dead, cfg.pcd.k_aux, cfg.pcd.aux_coef)
        ((loss + aux) / train.grad_accum).backward()
        total_loss += loss.item() / train.grad_accum
        total_aux += aux.item() / train.grad_accum
    if not math.isfinite(total_loss):
        raise FloatingPointError(
            f"phase {mode} step {step + 1}: loss is {total_loss}; lower train.lr or raise train.grad_clip's strictness"
        )
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, train.grad_clip if train.grad_clip > 0 else float("inf"))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    metrics = {"loss": total_loss, "aux_loss": total_aux, "grad_norm": grad_norm.item()}
    if mode == "concepts":
        metrics["dead_fraction"] = pcd.encoder.dead_mask(cfg.pcd.dead_after_tokens).float().mean().item()
    return metrics


@torch.no_grad()
def _evaluate(pcd: PCD, mode: SoftMode, data: PhaseData, cfg: PretrainRunConfig, batch_size: int = 32) -> dict:
    pcd.eval()
    windows = data.windows
    n = min(cfg.train.eval_windows, len(windows.heldout))
    losses, used = [], set()
    for start in range(0, n, batch_size):
        rows = slice(start, min(n, start + batch_size))
        loss, encoded = pcd.suffix_loss(data.heldout_acts[rows], windows.heldout[rows, windows.suffix], mode)
        losses.append(loss)
        if encoded is not None:
            used.update(encoded.top_indices.unique().tolist())
    per_window = torch.cat(losses)
    result = {"heldout_loss": per_window.mean().item(), "heldout_loss_per_window": per_window.tolist()}
    if mode == "concepts":
        result["heldout_concepts_used"] = len(used)
    return result


@torch.no_grad()
def _usage_stats(pcd: PCD, data: PhaseData, cfg: PretrainRunConfig) -> dict:
    """Per-concept firing frequency on held-out windows, stored in concepts.json."""
    counts = torch.zeros(cfg.pcd.n_concepts)
    encoded = pcd.encode(data.heldout_acts)
    counts += torch.bincount(encoded.top_indices.reshape(-1), minlength=cfg.pcd.n_concepts).float()
    tokens = encoded.top_indices.numel() // cfg.pcd.k
    return {"heldout_tokens": tokens, "firing_rate": (counts / tokens).tolist()}


def _check_same_config(info: dict, cfg: PretrainRunConfig, checkpoint: Path) -> None:
    saved, now = info.get("config", {}), asdict(cfg)
    differ = [
        f"{section}.{key}" for section in now for key in now[section]
        if saved.get(section, {}).get(key) != now[section][key] and key not in ("threads",)
    ]
    if differ:
        raise ValueError(
            f"cannot resume from {checkpoint}: it was made with a different config ({', '.join(differ)} differ). "
            "Resume with the original config, or start a new run with another --out."
        )


def _summary(cfg: PretrainRunConfig, data: PhaseData, results: dict, subject_loss: float, cache_hit: bool, wall: float) -> dict:
    pcd_loss = results["concepts"]["heldout_loss"]
    summary = {
        "heldout_suffix_loss": pcd_loss,
        "heldout_suffix_loss_no_concepts": results.get("no_concepts", {}).get("heldout_loss"),
        "heldout_suffix_loss_raw_activations": results.get("raw_activations", {}).get("heldout_loss"),
        "heldout_suffix_loss_subject_in_context": subject_loss,
        "dead_fraction": results["concepts"]["dead_fraction"],
        "heldout_concepts_used": results["concepts"].get("heldout_concepts_used"),
        "wall_seconds": wall,
        "train_windows": len(data.windows.train),
        "heldout_windows": len(data.windows.heldout),
        "tokens_per_phase": cfg.train.steps * cfg.train.batch_size * cfg.train.grad_accum * cfg.window.middle_len,
        "activation_cache_hit": cache_hit,
        "torch_threads": torch.get_num_threads(),
        "checkpoint": "pcd",
    }
    for control in ("no_concepts", "raw_activations"):
        if control in results:
            # Paired over the same held-out windows: positive means the PCD predicts the suffix better.
            diff = torch.tensor(results[control]["heldout_loss_per_window"]) - torch.tensor(
                results["concepts"]["heldout_loss_per_window"]
            )
            summary[f"gain_over_{control}"] = diff.mean().item()
            summary[f"gain_over_{control}_ci95"] = bootstrap_ci(diff)
    none, raw = summary["heldout_suffix_loss_no_concepts"], summary["heldout_suffix_loss_raw_activations"]
    if none is not None and raw is not None and none != raw:
        # Share of the no-context → full-activation gap that the k-sparse bottleneck keeps.
        summary["bottleneck_gap_closed"] = (none - pcd_loss) / (none - raw)
    return summary
