"""Launchers for `pcdrl sweep`: each trial is a `pcdrl train` child process, so a crash in one cannot take
the sweep down. `local` drives a pool of them from threads; `ray` runs the same command as one Ray task each.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from pcdrl.runtime.config_loader import ConfigError

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
"""The folder that holds this pcdrl package: trials import the same code as the sweep."""
STDERR_TAIL = 20_000
"""Characters of a trial's stderr that are kept (a traceback fits; pages of warnings do not)."""

# (trial index, exit code, stderr tail, seconds, resumed)
Done = Callable[[int, int, str, float, bool], None]


def run_trial(args: list[str], out: str, cwd: str, threads: int) -> tuple[int, str, float, bool]:
    """Run `python ARGS` for one trial; returns (exit code, stderr tail, seconds, whether it passed --resume).

    Whether to pass --resume is decided here, when the trial starts, so that a retried or restarted trial
    continues from the checkpoints its earlier attempt left."""
    resume = (Path(out) / "checkpoints").exists()
    args = [*args, "--resume"] if resume else args
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PCDRL_NO_PROGRESS": "1",
           "PYTHONPATH": PACKAGE_PARENT + (os.pathsep + path if path else "")}
    started = time.time()
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, errors="replace")
    return proc.returncode, proc.stderr[-STDERR_TAIL:], time.time() - started, resume


def run_local(jobs: list[tuple[list[str], str]], parallel: int, threads: int, done: Done) -> None:
    """`parallel` child processes at a time; `done` is called in this thread as each one finishes."""
    cwd = os.getcwd()
    pool = ThreadPoolExecutor(max_workers=parallel)
    futures = {pool.submit(run_trial, args, out, cwd, threads): i for i, (args, out) in enumerate(jobs)}
    try:
        for future in as_completed(futures):
            try:
                result = future.result()
            except OSError as err:  # the child could not start at all (e.g. no memory to fork)
                result = (-1, f"could not start the trial: {err}", 0.0, False)
            done(futures[future], *result)
    finally:
        # On Ctrl-C the children got SIGINT too and are checkpointing: wait for them, start no new ones.
        pool.shutdown(wait=True, cancel_futures=True)


def run_ray(jobs: list[tuple[list[str], str]], parallel: int, threads: int, address: str | None, done: Done,
            log: Callable[[str], None]) -> None:
    """One Ray task per trial, each reserving `threads` CPUs; a local instance gets parallel × threads CPUs,
    so that `parallel` trials run at once there as with the local launcher."""
    try:
        import ray
    except ImportError:
        raise ConfigError("launcher: ray is not installed; pip install ray (or pip install -e '.[dev]'), "
                          "or use launcher: local") from None
    started_here = not ray.is_initialized()
    if started_here:
        began = time.time()
        if address is None:
            ray.init(num_cpus=parallel * threads, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        log(f"ray: {'started a local instance' if address is None else 'joined ' + address} "
            f"in {time.time() - began:.1f} s")
    # A trial that exits non-zero returns normally; Ray retries only a task whose worker died (a lost node),
    # and that is safe because run_trial decides --resume when it starts.
    task = ray.remote(num_cpus=threads)(run_trial)
    cwd = os.getcwd()
    pending = {task.remote(args, out, cwd, threads): i for i, (args, out) in enumerate(jobs)}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as err:  # e.g. its retries ran out, or a worker cannot import pcdrl
                    result = (-1, f"ray: {err}", 0.0, False)
                done(pending.pop(ref), *result)
    finally:
        # Ctrl-C: not-yet-started trials are dropped; a running one gets KeyboardInterrupt, and subprocess.run
        # kills its child. Checkpoints are atomic, so a rerun resumes it.
        for ref in pending:
            ray.cancel(ref)
        if started_here:
            ray.shutdown()
