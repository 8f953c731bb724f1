"""`pcdrl quickstart`: the whole story on the embedded default models, one cached stage at a time.

    pretrain a PCD on SmolLM2 ─► label its concepts ─► build behaviour questions (S's true answers)
        ─► GRPO on concept sets against the SmolLM2 judge ─► eval: rows × judges with controls, report.html

Each stage writes an ordinary run folder under `out` (what `pcdrl pretrain|label|data build|train|eval`
would write). A stage whose folder holds a summary made with the same config is skipped, and an
interrupted one resumes, so a rerun costs seconds. Changing a stage's config re-runs that stage
afresh, and every stage after it; the old stage folder is moved aside to `<stage>.old-N`, never deleted.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from pcdrl.runtime.atomic import aside_name, atomic_write_json, move_aside
from pcdrl.runtime.config_loader import dump_yaml, load_config
from pcdrl.quickstart_config import QuickstartConfig, StageConfig

console = Console(stderr=True)
STAGE_FOLDERS = ("pcd-pretrain", "label", "data", "grpo", "eval")


@dataclass
class Stage:
    name: str
    folder: Path
    config: object
    done: bool
    """True when the folder already holds this config's finished output."""
    stale: bool
    """True when the folder holds work made with another config or from inputs that have since changed."""


def _stage(name: str, folder: Path, cls, stage: StageConfig, extra: list[str], upstream_changed: bool) -> Stage:
    """Load the stage's config; it is done when its folder holds a summary made with exactly this config
    and nothing upstream was rebuilt."""
    config = load_config(cls, stage.config, [*stage.overrides, *extra])
    saved = folder / "config.yaml"
    same = saved.is_file() and saved.read_text().split("\n", 1)[-1] == dump_yaml(config)
    return Stage(name, folder, config, done=same and (folder / "summary.json").is_file() and not upstream_changed,
                 stale=saved.is_file() and (not same or upstream_changed))


def _announce(stage: Stage, what: str) -> None:
    state = "cached" if stage.done else "running"
    console.rule(f"[bold]{stage.name}[/bold]: {what} ({state}: {stage.folder})")
    if not stage.done and stage.stale:
        # Another config, or rebuilt inputs: its checkpoints and journals would resume the wrong run.
        aside = move_aside(stage.folder)
        console.print(f"{stage.folder} was made with another config or from earlier inputs; moved it aside to "
                      f"{aside} (delete it yourself when you no longer need it) and starting the stage afresh")


def check_quickstart_out(out: Path) -> None:
    """Refuse an `out` that holds anything but quickstart stages: they would be mixed with, or moved, a
    user's files."""
    from pcdrl.runtime.rundir import RunFolderError

    if not out.exists():
        return
    if not out.is_dir():
        raise RunFolderError(f"--out {out} is a file, not a folder; choose another --out")
    ours = re.compile(rf"({'|'.join(map(re.escape, STAGE_FOLDERS))})(\.old-\d+)?|quickstart\.json|\..*\.tmp")
    foreign = sorted(p.name for p in out.iterdir() if not ours.fullmatch(p.name))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        suffix = aside_name(out).name.removeprefix(out.name)
        raise RunFolderError(f"--out {out} holds files that are not quickstart stages ({shown}); choose a new --out, "
                             f"or pass --force to move it aside (adds {suffix} to its name; nothing is deleted)")


def _has_labels(pcd_path: Path) -> bool:
    concepts = pcd_path / "concepts.json"
    return concepts.is_file() and any(c.get("label") for c in json.loads(concepts.read_text()).get("concepts", []))


def quickstart(cfg: QuickstartConfig) -> dict:
    from pcdrl.behaviors.build import build_dataset
    from pcdrl.behaviors.config import DataBuildConfig
    from pcdrl.pcd.config import PretrainRunConfig
    from pcdrl.pcd.labelling import label_checkpoint
    from pcdrl.pcd.labels_config import LabelRunConfig
    from pcdrl.pcd.pretrain import pretrain
    from pcdrl.evaluation.eval import evaluate
    from pcdrl.evaluation.eval_config import EvalConfig
    from pcdrl.rl.train_config import RLTrainConfig
    from pcdrl.rl.trainer import train

    out = Path(cfg.out)
    check_quickstart_out(out)
    times: dict[str, float] = {}
    threads = [f"threads={cfg.threads}"] if cfg.threads else []
    changed = False

    def timed(name: str, fn) -> None:
        started = time.time()
        fn()
        times[name] = round(time.time() - started, 1)

    if cfg.pcd:
        pcd_path = Path(cfg.pcd)
        if not (pcd_path / "config.json").is_file():
            raise FileNotFoundError(f"pcd: {pcd_path} is not a PCD checkpoint folder (no config.json)")
    else:
        stage = _stage("pretrain", out / "pcd-pretrain", PretrainRunConfig, cfg.pretrain,
                       [f"train.threads={cfg.threads}"] if cfg.threads else [], False)
        _announce(stage, "PCD on the subject model's activations")
        if not stage.done:
            timed("pretrain", lambda: pretrain(stage.config, stage.folder, resume=(stage.folder / "checkpoints").exists()))
            changed = True
        pcd_path = stage.folder / "pcd"

    stage = _stage("label", out / "label", LabelRunConfig, cfg.label,
                   [f"label.threads={cfg.threads}"] if cfg.threads else [], changed)
    if cfg.pcd and _has_labels(pcd_path):
        stage.done = True  # a reused PCD that is labelled already keeps its labels
    _announce(stage, f"labels and auto-interp for {pcd_path}")
    if not stage.done:
        timed("label", lambda: label_checkpoint(pcd_path, stage.config, stage.folder))
        changed = True

    stage = _stage("data", out / "data", DataBuildConfig, cfg.data, [], False)
    _announce(stage, "behaviour questions with S's true answers")
    if not stage.done:
        timed("data", lambda: build_dataset(stage.config, stage.folder))
        changed = True
    data_path = stage.folder

    stage = _stage("train", out / "grpo", RLTrainConfig, cfg.train, [f"pcd={pcd_path}", f"data={data_path}", *threads],
                   changed)
    _announce(stage, f"{stage.config.algorithm.upper()} on concept sets")
    if not stage.done:
        resume = (stage.folder / "checkpoints" / "latest.txt").is_file()
        timed("train", lambda: train(stage.config, stage.folder, resume=resume))
        changed = True
    run_path = stage.folder
    judged = stage.config.steps * stage.config.items_per_step * stage.config.samples_per_item

    stage = _stage("eval", out / "eval", EvalConfig, cfg.eval, threads, changed)
    _announce(stage, "held-out evaluation with controls")
    if stage.done:
        summary = json.loads((stage.folder / "summary.json").read_text())
    else:
        started = time.time()
        summary = evaluate([run_path], stage.config, stage.folder)
        times["eval"] = round(time.time() - started, 1)
    record = {"stage_seconds": times, "judged_explanations": judged, "report": str(stage.folder / "report.html"),
              "summary": str(stage.folder / "summary.json")}
    atomic_write_json(out / "quickstart.json", record)
    return {"eval": summary, **record}
