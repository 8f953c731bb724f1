"""`pcdrl sweep SWEEP.yaml`: `pcdrl train` over reward weights × seeds, one ordinary run folder per trial.

    OUT/sweep.yaml              the resolved sweep config
    OUT/trials/<name>/          a `pcdrl train` run folder, plus trial.json (status, exit code, seconds) and stderr.txt
    OUT/results.sqlite, .csv    one row per trial, rebuilt from the trial folders on every run
    OUT/pareto.png              held-out accuracy after RL against explanation size, the front highlighted

Every trial is a child process, so one that crashes is recorded and the others go on. Running the same
command again skips trials that have a summary.json and resumes the others from their checkpoints.
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pcdrl.runtime.atomic import atomic_write_json, atomic_write_text
from pcdrl.runtime.config_loader import ConfigError, dump_yaml, resolve_config_path
from pcdrl.runtime.progress import progress_bar
from pcdrl.sweeps.config import SweepConfig
from pcdrl.sweeps.launch import run_local, run_ray
from pcdrl.sweeps.results import mark_pareto, markdown_table, plot_pareto, trial_row, write_csv, write_sqlite


@dataclass
class Trial:
    name: str
    """Stable across reruns (it names the trial's folder), e.g. judge_logprob=0.5,sparsity=0.05,seed=0."""
    weights: dict[str, float]
    seed: int
    overrides: list[str]
    """Everything passed to `pcdrl train BASE`: the sweep's shared overrides, then rewards, seed and threads."""


def trial_name(weights: dict[str, float], seed: int) -> str:
    text = ",".join([f"{term}={w:g}" for term, w in weights.items()] + [f"seed={seed}"])
    return re.sub(r"[^\w.=,+-]", "-", text)  # plugin names (module:function) stay one path component


def trials(cfg: SweepConfig) -> list[Trial]:
    """Every weight vector crossed with every seed, in a fixed order."""
    plan = []
    for weights in cfg.weights.vectors()[0]:
        for seed in cfg.seeds:
            swept = [f"rewards={json.dumps(weights)}", f"seed={seed}", f"threads={cfg.threads_per_trial}"]
            overrides = [*cfg.overrides, *swept]
            plan.append(Trial(trial_name(weights, seed), weights, seed, overrides))
    named: dict[str, Trial] = {}
    for trial in plan:  # a trial's name is its folder: two weight vectors that print alike would share one
        if trial.name in named:
            raise ConfigError(f"weights: {named[trial.name].weights} and {trial.weights} both name the trial folder "
                              f"{trial.name} (weights print with 6 significant digits); make them differ within "
                              "6 digits or drop one")
        named[trial.name] = trial
    return plan


def train_args(cfg: SweepConfig, trial: Trial, folder: Path) -> list[str]:
    """The child's arguments after `python`; absolute paths, so the command also reads well in trial.json."""
    return ["-m", "pcdrl", "train", str(resolve_config_path(cfg.base).resolve()), "--out", str(folder.resolve()), *trial.overrides]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_sweep(cfg: SweepConfig, log: Callable[[str], None] = _stderr) -> dict:
    """Run the trials that have not finished, then rebuild the results. Returns the rows, what ran and the table."""
    out, plan = Path(cfg.out), trials(cfg)
    folders = {t.name: out / "trials" / t.name for t in plan}
    dropped = cfg.weights.vectors()[1]
    if dropped:
        log(f"note: dropped {dropped} weight vector(s) whose weights are all zero (they would train on nothing)")
    atomic_write_text(out / "sweep.yaml", dump_yaml(cfg))
    todo = [t for t in plan if not (folders[t.name] / "summary.json").is_file()]
    if len(todo) < len(plan):
        log(f"{len(plan) - len(todo)} of {len(plan)} trials already finished: skipped")
    finished = []

    with progress_bar() as bar:
        task = bar.add_task("sweep", total=len(plan), completed=len(plan) - len(todo), status="")
        say = log if bar.disable else bar.console.print  # a live bar needs its own console to print above it

        def done(index: int, code: int, stderr: str, seconds: float, resumed: bool) -> None:
            trial, folder = todo[index], folders[todo[index].name]
            status = "ok" if code == 0 else "stopped" if code == 130 else "failed"
            atomic_write_text(folder / "stderr.txt", stderr)
            command = [sys.executable, *train_args(cfg, trial, folder), *(["--resume"] if resumed else [])]
            atomic_write_json(folder / "trial.json", {
                "name": trial.name, "weights": trial.weights, "seed": trial.seed, "status": status, "exit_code": code,
                "seconds": round(seconds, 1), "command": command})
            finished.append(trial.name)
            bar.update(task, advance=1, status=trial.name)
            why = "" if code == 0 else f" (exit {code}; see {folder / 'stderr.txt'})"
            say(f"[{len(finished)}/{len(todo)}] {trial.name}: {status}{why} in {seconds:.1f} s")

        jobs = [(train_args(cfg, t, folders[t.name]), str(folders[t.name])) for t in todo]
        if jobs and cfg.launcher == "ray":
            run_ray(jobs, cfg.parallel, cfg.threads_per_trial, cfg.ray_address, done, say)
        elif jobs:
            run_local(jobs, cfg.parallel, cfg.threads_per_trial, done)
    return write_results(cfg, plan, folders, ran=finished, log=log)


def write_results(cfg: SweepConfig, plan: list[Trial], folders: dict[str, Path], ran: list[str],
                  log: Callable[[str], None] = _stderr) -> dict:
    base = cfg.train_config()
    judge = base.judge.name
    rows = [trial_row(t, folders[t.name], base.policy.k) for t in plan]
    mark_pareto(rows, judge)
    out = Path(cfg.out)
    write_sqlite(rows, out / "results.sqlite")
    write_csv(rows, out / "results.csv")
    plot = plot_pareto(rows, out / "pareto.png", judge)
    log(plot)
    return {"rows": rows, "ran": ran, "failed": [r["name"] for r in rows if r["status"] != "ok"],
            "table": markdown_table(rows), "plot": plot, "judge": judge}
