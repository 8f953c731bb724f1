"""The `pcdrl` command line. Each verb reads a YAML config plus dotted overrides and writes a run folder.

    pcdrl pretrain configs/pcd/quickstart.yaml --out runs/pcd-quickstart train.steps=100
    pcdrl label runs/pcd-quickstart/pcd --out runs/label-quickstart
    pcdrl data build configs/data/quickstart.yaml --out runs/data-quickstart
    pcdrl judge-eval configs/eval/judge_eval.yaml --out runs/judge-eval
    pcdrl train configs/rl/grpo_concepts.yaml --out runs/grpo
    pcdrl eval runs/grpo --out runs/grpo/eval max_items=60
    pcdrl sweep configs/sweeps/weights_2x2.yaml --out runs/sweep-2x2 steps=3 --dry-run
    pcdrl study serve runs/grpo/eval        (then: pcdrl study simulate / pcdrl study report runs/grpo/eval/study)
    pcdrl quickstart
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from pcdrl.runtime.config_loader import SHIPPED_CONFIGS


DEFAULT_EVAL_CONFIG = SHIPPED_CONFIGS / "eval" / "eval.yaml"


FORCE_HELP = "if --out holds another run or other files, move it aside to OUT.old-N first (nothing is deleted)"


def _add_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None, help="run folder (config.yaml, metrics.jsonl, summary.json)")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pcdrl",
        description="Train Predictive Concept Decoders that help people predict models.",
        epilog="Any verb also takes dotted config overrides anywhere on the line: pcd.k=8 train.steps=50",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)

    pre = verbs.add_parser("pretrain", help="pretrain a PCD on the subject model's activations")
    pre.add_argument("config", type=Path, help="YAML config, e.g. configs/pcd/quickstart.yaml")
    pre.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    _add_run_args(pre)

    lab = verbs.add_parser("label", help="label a PCD's concepts and score the labels (auto-interp)")
    lab.add_argument("checkpoint", type=Path, help="PCD checkpoint folder, e.g. runs/pcd-quickstart/pcd")
    lab.add_argument("--config", type=Path, default=None, help="YAML config for labelling (default: built-in defaults)")
    _add_run_args(lab)

    data = verbs.add_parser("data", help="behaviour-question datasets")
    data_verbs = data.add_subparsers(dest="data_verb", required=True)
    build = data_verbs.add_parser("build", help="run S and write behaviour questions (a datasets.Dataset)")
    build.add_argument("config", type=Path, help="YAML config, e.g. configs/data/quickstart.yaml")
    _add_run_args(build)

    jev = verbs.add_parser("judge-eval", help="score judges on held-out questions: prior, random, pretrained, oracle")
    jev.add_argument("config", type=Path, help="YAML config, e.g. configs/eval/judge_eval.yaml")
    _add_run_args(jev)

    evl = verbs.add_parser("eval", help="held-out accuracy of RL runs vs prior/random/pretrained/oracle, with controls; "
                                        "report.html")
    evl.add_argument("runs", nargs="+", type=Path, help="pcdrl train run folder(s) or checkpoint folder(s); "
                     "several runs are seeds of one experiment")
    evl.add_argument("--config", type=Path, default=None, help="YAML config (default: configs/eval/eval.yaml)")
    _add_run_args(evl)

    trn = verbs.add_parser("train", help="RL (GRPO or PPO) on concept sets against a simulated-human judge")
    trn.add_argument("config", type=Path, help="YAML config: configs/rl/grpo_concepts.yaml or configs/rl/ppo_concepts.yaml")
    trn.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    _add_run_args(trn)

    swp = verbs.add_parser("sweep", help="pcdrl train over reward weights x seeds; results table and Pareto plot",
                           epilog="Overrides of sweep fields (parallel=4, weights.resolution=5) change the sweep; "
                                  "any other (steps=3, kl.beta=0.1) applies to every trial.")
    swp.add_argument("config", type=Path, help="sweep YAML, e.g. configs/sweeps/weights_2x2.yaml")
    swp.add_argument("--dry-run", action="store_true", help="print the trials (name and overrides) and run nothing")
    swp.add_argument("--launcher", choices=["local", "ray"], default=None, help="overrides the config's launcher")
    swp.add_argument("--out", type=Path, default=None, help="sweep folder (overrides the config's out)")
    swp.add_argument("--force", action="store_true", help=FORCE_HELP)

    qs = verbs.add_parser("quickstart", help="the whole pipeline on the default models, every stage cached: "
                                             "pretrain, label, data, GRPO, eval; prints the table")
    qs.add_argument("--config", type=Path, default=None, help="YAML config (default: configs/quickstart.yaml)")
    qs.add_argument("--out", type=Path, default=None, help="folder for the stage run folders (default: runs/quickstart)")
    qs.add_argument("--force", action="store_true", help=FORCE_HELP)

    serve = verbs.add_parser("serve", help="serve a model as an OpenAI-compatible completions endpoint (loopback)")
    serve.add_argument("--model", default="smollm2-135m-instruct", help="offline name, local folder or hub id")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--quantize", default="none", choices=["none", "int8", "bnb8", "bnb4"])
    serve.add_argument("--allow-remote", action="store_true",
                       help="allow a --host other machines can reach (the server has no authentication and no TLS)")
    serve.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                       help="change a request limit (docs/judge.md), e.g. --limit max_tokens=2048")
    from pcdrl.study.commands import add_study_parser

    add_study_parser(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides (key=value) may stand anywhere on the line; anything else unknown is an error.
    args.overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    stray = [item for item in extra if item not in args.overrides]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)} (overrides look like section.field=value)")
    from pcdrl.runtime.config_loader import ConfigError
    from pcdrl.runtime.signals import StopRequested
    from pcdrl.models import ModelNotAvailableError
    from pcdrl.models.backends import BackendError

    try:
        if args.verb == "pretrain":
            return _pretrain(args)
        if args.verb == "label":
            return _label(args)
        if args.verb == "data":
            return _data_build(args)
        if args.verb == "judge-eval":
            return _judge_eval(args)
        if args.verb == "eval":
            return _eval(args)
        if args.verb == "train":
            return _train(args)
        if args.verb == "sweep":
            return _sweep(args)
        if args.verb == "quickstart":
            return _quickstart(args)
        if args.verb == "study":
            from pcdrl.study.commands import run_study

            return run_study(args)
        if args.verb == "serve":
            from pcdrl.models.server import main as serve_main

            return serve_main(["--model", args.model, "--host", args.host, "--port", str(args.port),
                               "--quantize", args.quantize, *(["--allow-remote"] if args.allow_remote else []),
                               *[f"--limit={item}" for item in args.limit]])
    except (ConfigError, ModelNotAvailableError, BackendError, ValueError, FileNotFoundError, FloatingPointError) as err:
        if os.environ.get("PCDRL_DEBUG") == "1":
            raise  # the full traceback, for bug reports
        print(f"pcdrl {args.verb}: error: {err}", file=sys.stderr)
        print("(set PCDRL_DEBUG=1 for the full traceback)", file=sys.stderr)
        return 2
    except StopRequested as stop:
        print(f"pcdrl {args.verb}: {stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        # data build and judge-eval journal every finished chunk; nothing finished is lost.
        print(f"pcdrl {args.verb}: interrupted; finished work is kept in the run folder, "
              "run the same command again to resume", file=sys.stderr)
        return 130
    return 1


def _claim_out(args, out: Path, inputs: list) -> None:
    """--force: move a non-empty --out aside (never delete it) so that the run starts in an empty folder."""
    from pcdrl.runtime.rundir import claim_out

    aside = claim_out(out, args.force, getattr(args, "resume", False), inputs)
    if aside is not None:
        print(f"pcdrl {args.verb}: moved {out} aside to {aside} (nothing was deleted)", file=sys.stderr)


def _check_resume(out: Path, resume: bool) -> None:
    from pcdrl.pcd.train_state import check_resume

    warning = check_resume(out, resume)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


# Sweep fields that say how trials run, not what they compute: a rerun may change them.
SWEEP_RUNTIME_FIELDS = ("parallel", "launcher", "ray_address", "threads_per_trial", "out")


def _pretrain(args) -> int:
    import json

    from pcdrl.runtime.config_loader import load_config
    from pcdrl.runtime.rundir import check_out
    from pcdrl.pcd.config import PretrainRunConfig
    from pcdrl.pcd.pretrain import pretrain

    cfg = load_config(PretrainRunConfig, args.config, args.overrides)
    out = args.out or Path("runs") / f"pretrain-{args.config.stem}"
    _claim_out(args, out, [args.config])
    check_out(out, "pcdrl pretrain", cfg)
    _check_resume(out, args.resume)
    summary = pretrain(cfg, out, resume=args.resume)
    print(json.dumps(summary, indent=2))
    print(f"PCD checkpoint: {out / 'pcd'}", file=sys.stderr)
    return 0


def _label(args) -> int:
    import json

    from pcdrl.runtime.config_loader import load_config
    from pcdrl.runtime.rundir import check_out
    from pcdrl.pcd.labels_config import LabelRunConfig
    from pcdrl.pcd.labelling import label_checkpoint

    cfg = load_config(LabelRunConfig, args.config, args.overrides)
    out = args.out or args.checkpoint.parent / "label"
    _claim_out(args, out, [args.checkpoint, args.config])
    check_out(out, f"pcdrl label {args.checkpoint}", cfg)
    summary = label_checkpoint(args.checkpoint, cfg, out)
    print(json.dumps(summary, indent=2))
    return 0


def _data_build(args) -> int:
    import json

    from pcdrl.behaviors.build import build_dataset
    from pcdrl.behaviors.config import DataBuildConfig
    from pcdrl.runtime.config_loader import load_config
    from pcdrl.runtime.rundir import check_out

    cfg = load_config(DataBuildConfig, args.config, args.overrides)
    out = args.out or Path("runs") / f"data-{args.config.stem}"
    _claim_out(args, out, [args.config])
    check_out(out, "pcdrl data build", cfg)
    summary = build_dataset(cfg, out)
    print(json.dumps({k: summary[k] for k in ("n_items", "splits", "counts", "always_no_accuracy",
                                              "dropped_attributes", "option_overlap", "distractor_sources",
                                              "wall_seconds") if k in summary}, indent=2))
    print(f"dataset: {out / 'dataset'} (full summary: {out / 'summary.json'})", file=sys.stderr)
    return 0


def _judge_eval(args) -> int:
    from pcdrl.runtime.config_loader import load_config
    from pcdrl.runtime.rundir import check_out
    from pcdrl.evaluation.judge_eval import judge_eval
    from pcdrl.evaluation.judge_eval_config import JudgeEvalConfig
    from pcdrl.evaluation.tables import judge_eval_table

    cfg = load_config(JudgeEvalConfig, args.config, args.overrides)
    out = args.out or Path("runs") / f"judge-eval-{args.config.stem}"
    _claim_out(args, out, [args.config])
    check_out(out, "pcdrl judge-eval", cfg)
    summary = judge_eval(cfg, out)
    print(judge_eval_table(summary))
    print(f"summary: {out / 'summary.json'}", file=sys.stderr)
    return 0


def _eval(args) -> int:
    from pcdrl.runtime.config_loader import load_config
    from pcdrl.runtime.rundir import check_out
    from pcdrl.evaluation.eval import evaluate
    from pcdrl.evaluation.eval_config import EvalConfig
    from pcdrl.evaluation.tables import eval_table

    # nargs="+" also takes the key=value overrides. Trial folders of a sweep have "=" in their names too, so
    # an argument is an override only when it does not exist and its key names an EvalConfig field (an override's
    # value may hold a "/": matched_concepts=[runs/concepts/seed0]).
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    runs = [p for p in args.runs if p.exists() or str(p).split("=", 1)[0].split(".")[0] not in fields
            or "=" not in str(p)]
    overrides = [str(p) for p in args.runs if p not in runs] + args.overrides
    cfg = load_config(EvalConfig, args.config or DEFAULT_EVAL_CONFIG, overrides)
    out = args.out or (runs[0] / "eval" if len(runs) == 1 else Path("runs") / f"eval-{runs[0].name}")
    _claim_out(args, out, [*runs, args.config])
    check_out(out, "pcdrl eval", cfg)  # the runs evaluated are compared too, once eval has found their checkpoints
    summary = evaluate(runs, cfg, out)
    print(eval_table(summary))
    print(f"report: {out / 'report.html'} (summary: {out / 'summary.json'})", file=sys.stderr)
    return 0


def _quickstart(args) -> int:
    from pcdrl.runtime.config_loader import load_config
    from pcdrl.quickstart import quickstart
    from pcdrl.quickstart_config import QuickstartConfig
    from pcdrl.evaluation.tables import eval_table

    default = SHIPPED_CONFIGS / "quickstart.yaml"
    cfg = load_config(QuickstartConfig, args.config or default, args.overrides + ([f"out={args.out}"] if args.out else []))
    _claim_out(args, Path(cfg.out), [args.config])
    result = quickstart(cfg)
    print(eval_table(result["eval"]))
    print(_quickstart_verdict(result["eval"], result["judged_explanations"]))
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result["stage_seconds"].items()) or "all cached"
    print(f"stages run: {stages}", file=sys.stderr)
    print(f"report: {result['report']}", file=sys.stderr)
    print(f"ask people the same questions: pcdrl study serve {Path(result['report']).parent} (docs/study.md)",
          file=sys.stderr)
    return 0


def _quickstart_verdict(summary: dict, judged: int) -> str:
    """One plain paragraph under the quickstart table: did this run show the RL gain, and if not, where it shows."""
    training = [j for j, info in summary["judges"].items() if info["role"] == "training"]
    gain = summary["gain"].get(training[0]) if training else None
    if gain and gain["ci95"][0] > 0:
        return (f"\nRL helped the training judge in this run: {gain['rl_minus_pretrained']:+.3f} "
                f"[{gain['ci95'][0]:+.3f}, {gain['ci95'][1]:+.3f}] on {summary['n_items']} held-out items.")
    return ("\nThis quickstart does not show an RL gain, and at its size it cannot: it trains on "
            f"{judged:,} judged explanations and evaluates {summary['n_items']} held-out items, to fit 15 minutes on "
            "2 CPU cores. The gain shows at ~9k judged explanations per seed on 554 held-out items: "
            "`python scripts/bench_rl_gain.py` (~45 min on 2 cores; README, \"RL gain on two CPU cores\").")


def _train(args) -> int:
    import json

    from pcdrl.runtime.config_loader import load_config
    from pcdrl.runtime.rundir import check_out
    from pcdrl.rl.train_config import RLTrainConfig
    from pcdrl.rl.trainer import RESUMABLE_CHANGES, train

    cfg = load_config(RLTrainConfig, args.config, args.overrides)
    out = args.out or Path("runs") / f"train-{args.config.stem}"
    _claim_out(args, out, [args.config, cfg.pcd, cfg.data])
    check_out(out, "pcdrl train", cfg, RESUMABLE_CHANGES)
    _check_resume(out, args.resume)
    print(json.dumps(train(cfg, out, resume=args.resume), indent=2))
    return 0


def _sweep(args) -> int:
    import shlex

    from pcdrl.runtime.rundir import check_saved_config
    from pcdrl.sweeps.sweep import run_sweep, trials
    from pcdrl.sweeps.config import load_sweep_config

    flags = ([f"launcher={args.launcher}"] if args.launcher else []) + ([f"out={args.out}"] if args.out else [])
    cfg = load_sweep_config(args.config, [*args.overrides, *flags])
    if not args.dry_run:
        _claim_out(args, Path(cfg.out), [args.config, cfg.base])
        check_saved_config(Path(cfg.out), "sweep.yaml", cfg, SWEEP_RUNTIME_FIELDS, "pcdrl sweep")
    if args.dry_run:
        plan = trials(cfg)
        for trial in plan:
            print(f"{trial.name}: {' '.join(shlex.quote(o) for o in trial.overrides)}")
        print(f"{len(plan)} trials into {cfg.out}/trials/ (dry run: nothing ran)", file=sys.stderr)
        return 0
    result = run_sweep(cfg)
    print(result["table"])
    print(f"results: {cfg.out}/results.sqlite, {cfg.out}/results.csv", file=sys.stderr)
    if result["failed"]:
        print(f"{len(result['failed'])} trial(s) did not finish: {', '.join(result['failed'])}; each folder's "
              "stderr.txt says why; rerun the same command to retry them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
