"""`pcdrl sweep`: trial plans, validation before anything runs, the local and Ray launchers, resume and failures."""
import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import pcdrl.sweeps.sweep as sweep_module
from pcdrl.runtime.config_loader import ConfigError, dump_yaml, load_config
from pcdrl.sweeps.sweep import run_sweep, trials
from pcdrl.sweeps.config import SweepConfig, load_sweep_config
from pcdrl.rl.train_config import RLTrainConfig

REPO = Path(__file__).resolve().parents[2]
GRID = "weights={mode: grid, grid: {judge_logprob: [0.5, 1.0], sparsity: [0.0, 0.05]}}"


def _sweep(*extra, base=REPO / "pcdrl/configs/rl/grpo_concepts.yaml", out="unused"):
    return load_config(SweepConfig, None, [f"base={base}", f"out={out}", GRID, "seeds=[0, 1]", *extra])


def _tiny_base(pipeline, tmp_path) -> Path:
    """The tiny train config of test_trainer.py, cut to one step of 2 items and 2 eval items."""
    judge = f"{{name: tiny, backend: {{model: {pipeline['model']}}}}}"
    cfg = load_config(RLTrainConfig, None, [
        f"pcd={pipeline['pcd']}", f"data={pipeline['data']}", "families=[continuation,audit]", f"judge={judge}",
        "policy.k=2", "grpo.group_size=2", "items_per_step=2", "steps=1", "checkpoint_every=1", "heldout_judges=[]",
        "max_eval_items=2", "rewards={judge_logprob: 1.0, sparsity: 0.1}", "kl.beta=0.05",
    ])
    path = tmp_path / "base.yaml"
    path.write_text(dump_yaml(cfg))
    return path


def _table(out: Path) -> list[dict]:
    with sqlite3.connect(out / "results.sqlite") as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT * FROM trials ORDER BY name")]


def test_grid_simplex_and_random_plans():
    plan = trials(_sweep("overrides=[kl.beta=0.1]", "threads_per_trial=2"))
    assert [t.name for t in plan][:3] == ["judge_logprob=0.5,sparsity=0,seed=0", "judge_logprob=0.5,sparsity=0,seed=1",
                                          "judge_logprob=0.5,sparsity=0.05,seed=0"]
    assert len(plan) == len({t.name for t in plan}) == 8
    rewards = 'rewards={"judge_logprob": 1.0, "sparsity": 0.05}'
    assert plan[-1].overrides == ["kl.beta=0.1", rewards, "seed=1", "threads=2"], "the sweep's keys come last"
    # An all-zero combination is dropped (it would train on nothing); the rest of the grid stays.
    zero = _sweep("weights.grid={judge_logprob: [0.0, 1.0], sparsity: [0.0, 0.05]}", "seeds=[0]")
    assert zero.weights.vectors()[1] == 1 and len(trials(zero)) == 3

    simplex = _sweep("weights={mode: simplex, terms: [judge_logprob, judge_correct, sparsity], resolution: 4}",
                     "seeds=[0]")
    vectors = [t.weights for t in trials(simplex)]
    assert len(vectors) == 15 and len({tuple(v.values()) for v in vectors}) == 15  # C(4 + 2, 2) compositions of 4
    assert all(abs(sum(v.values()) - 1) < 1e-9 and all((4 * w) % 1 == 0 for w in v.values()) for v in vectors)

    def draw(seed):
        random = f"{{mode: random, terms: [judge_logprob, brier], n_trials: 5, low: 0.1, high: 2, seed: {seed}}}"
        cfg = _sweep(f"weights={random}")
        return [t.name for t in trials(cfg)]

    assert draw(3) == draw(3) != draw(4) and len(draw(3)) == 10
    assert all(0.1 <= t.weights["brier"] <= 2 for t in trials(_sweep("weights={mode: random, terms: [brier]}")))


@pytest.mark.parametrize("override, message", [
    ("weights.grid={judge_corect: [1.0]}", "weights.grid: unknown reward 'judge_corect'; built-in rewards: brier, "
                                           "fidelity, grounding, judge_correct, judge_logprob, judge_true_pmi, sparsity"),
    ("weights.grid={judge_logprob: [1.0], sparsity: [-0.1]}", "weights.grid.sparsity: .* negative weight"),
    ("weights.grid={}", "weights.grid: empty"),
    ("weights.grid={judge_logprob: []}", "weights.grid.judge_logprob: no values"),
    ("weights.grid={judge_logprob: [0.0], sparsity: [0]}", "weights: every weight vector is all zero"),
    ("weights={mode: simplex, terms: [judge_logprob, sparsty]}", "weights.terms: unknown reward 'sparsty'"),
    ("base=configs/rl/nope.yaml", "base: configs/rl/nope.yaml does not exist"),
    ("overrides=[seed=3]", "overrides: 'seed=3' sets 'seed', which the sweep sets per trial"),
    ("overrides=[stepz=3]", "base \\+ overrides: stepz: unknown key .*Did you mean 'steps'"),
    ("launcher=slurm", "launcher: 'slurm' is not one of"),
])
def test_config_errors_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        _sweep(override)


def test_command_line_overrides_go_to_the_sweep_or_to_every_trial(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(dump_yaml(_sweep("overrides=[kl.beta=0.1]")))
    cfg = load_sweep_config(sweep, ["parallel=3", "steps=2", "weights.grid.sparsity=[0.1]"])
    assert cfg.parallel == 3 and cfg.overrides == ["kl.beta=0.1", "steps=2"] and len(trials(cfg)) == 4
    with pytest.raises(ConfigError, match="paralel: unknown key, neither a sweep field .* Did you mean 'parallel'"):
        load_sweep_config(sweep, ["paralel=2"])


def test_cli_dry_run_lists_trials_and_bad_configs_fail_before_running(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    grid = GRID.replace("=", ": ", 1)
    base = REPO / "pcdrl/configs/rl/grpo_concepts.yaml"
    sweep.write_text(f"base: {base}\nout: {tmp_path / 'out'}\n{grid}\nseeds: [0, 1]\n")
    cli = [sys.executable, "-m", "pcdrl.cli", "sweep", str(sweep)]
    result = subprocess.run([*cli, "--dry-run", "steps=3"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 8 and lines[0].startswith("judge_logprob=0.5,sparsity=0,seed=0: steps=3 'rewards=")
    assert not (tmp_path / "out").exists(), "a dry run creates nothing"
    bad = "weights.grid={judge_logprob: [1.0], brierr: [1.0]}"
    result = subprocess.run([*cli, bad], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "unknown reward 'brierr'; built-in rewards: brier" in result.stderr
    assert not (tmp_path / "out").exists()


def test_ray_launcher_without_ray_says_how_to_install_it(monkeypatch):
    from pcdrl.sweeps.launch import run_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ConfigError, match="ray is not installed; pip install ray"):
        run_ray([(["-m", "pcdrl.cli"], "unused")], 1, 1, None, done=None, log=print)


def test_local_sweep_records_a_failure_resumes_and_skips_finished_trials(pipeline, tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    cfg = _sweep("parallel=2", base=_tiny_base(pipeline, tmp_path), out=out)
    # One trial's folder holds a corrupt checkpoint: the sweep passes --resume and that train exits 2.
    broken = out / "trials" / "judge_logprob=1,sparsity=0.05,seed=1" / "checkpoints"
    (broken / "step_000001").mkdir(parents=True)
    (broken / "step_000001" / "state.json").write_text("not json")
    (broken / "latest.txt").write_text("step_000001\n")
    first = run_sweep(cfg, log=lambda line: None)
    assert len(first["ran"]) == 8 and first["failed"] == ["judge_logprob=1,sparsity=0.05,seed=1"]
    info = json.loads((broken.parent / "trial.json").read_text())
    assert info["status"] == "failed" and info["exit_code"] == 2 and info["command"][-1] == "--resume"
    assert "pcdrl train: error:" in (broken.parent / "stderr.txt").read_text()
    failed = [r for r in _table(out) if r["status"] != "ok"]
    assert [(r["name"], r["exit_code"]) for r in failed] == [("judge_logprob=1,sparsity=0.05,seed=1", 2)]
    assert failed[0]["error"].startswith("pcdrl train: error:")

    shutil.rmtree(broken.parent)  # the fix; the rerun runs only that trial
    second = run_sweep(cfg, log=lambda line: None)
    assert second["ran"] == ["judge_logprob=1,sparsity=0.05,seed=1"] and second["failed"] == []
    rows = _table(out)
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    assert all(r["acc_rl_tiny"] is not None and r["acc_pretrained_tiny"] is not None for r in rows)
    assert all(r["mean_explanation_size"] == 2.0 and r["train_seconds"] <= r["wall_seconds"] for r in rows)
    assert {(r["weight_judge_logprob"], r["weight_sparsity"], r["seed"]) for r in rows} == {
        (a, b, s) for a in (0.5, 1.0) for b in (0.0, 0.05) for s in (0, 1)}
    with open(out / "results.csv") as handle:
        assert [r["status"] for r in csv.DictReader(handle)] == ["ok"] * 8
    assert "| trial | status | pretrained tiny | rl tiny | size | train s | front |" in second["table"]
    assert second["plot"] == f"Pareto plot: {out / 'pareto.png'}" and (out / "pareto.png").stat().st_size > 1000

    # Everything finished: a third run starts no process and leaves every trial folder as it was.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/*.json")}
    monkeypatch.setattr(sweep_module, "run_local", lambda *a, **k: pytest.fail("a finished trial was launched again"))
    third = run_sweep(cfg, log=lambda line: None)
    assert third["ran"] == [] and len(_table(out)) == 8
    assert {p: p.stat().st_mtime_ns for p in out.glob("trials/*/*.json")} == stamps


def test_ray_launcher_runs_trials_as_ray_tasks(pipeline, tmp_path):
    import ray  # noqa: F401  (a dev dependency: CI must have it, so no skip)
    out = tmp_path / "sweep"
    base = _tiny_base(pipeline, tmp_path)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(dump_yaml(_sweep("weights.grid={judge_logprob: [1.0]}", base=base, out=out)))
    cfg = load_sweep_config(sweep, ["launcher=ray", "parallel=2", "max_eval_items=1"])
    assert cfg.overrides == ["max_eval_items=1"], "a train field on the sweep's line applies to every trial"
    lines = []
    result = run_sweep(cfg, log=lines.append)
    assert result["failed"] == [] and sorted(result["ran"]) == ["judge_logprob=1,seed=0", "judge_logprob=1,seed=1"]
    assert any(line.startswith("ray: started a local instance in") for line in lines)
    rows = _table(out)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(json.loads((out / "trials" / r["name"] / "summary.json").read_text())["n_eval_items"] == 1 for r in rows)


def test_weights_that_name_one_folder_are_refused():
    # 0.1 and 0.1000001 print alike at 6 significant digits, so both trials would write runs into one folder.
    cfg = _sweep("weights.grid={judge_logprob: [0.1, 0.1000001], sparsity: [0.0]}", "seeds=[0]")
    with pytest.raises(ConfigError, match=r"^weights: \{'judge_logprob': 0\.1, 'sparsity': 0\.0\} and "
                                          r"\{'judge_logprob': 0\.1000001, 'sparsity': 0\.0\} both name the trial folder "
                                          r"judge_logprob=0\.1,sparsity=0,seed=0"):
        trials(cfg)
