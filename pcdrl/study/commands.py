"""The `pcdrl study` verbs: serve, simulate, report (wired into pcdrl/cli.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PORT = 8100


def add_study_parser(verbs) -> None:
    study = verbs.add_parser("study", help="a human-study page: people answer the eval's questions from the same "
                                           "explanations; report people against the judges (docs/study.md)")
    sub = study.add_subparsers(dest="study_verb", required=True)

    serve = sub.add_parser("serve", help="serve the study's pages (starts the study from EVAL_DIR the first time)")
    serve.add_argument("eval_dir", type=Path, help="a `pcdrl eval` --out folder (it holds items.json)")
    serve.add_argument("--study", type=Path, default=None, help="study folder (default: EVAL_DIR/study)")
    serve.add_argument("--config", type=Path, default=None, help="study YAML (default: built-in defaults; "
                       "frozen when the study starts)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0 = any free port")
    serve.add_argument("--allow-remote", action="store_true",
                       help="allow a --host other machines can reach (plain HTTP, anyone who reaches it can take part)")

    sim = sub.add_parser("simulate", help="simulated participants: a judge answers through the same pages")
    sim.add_argument("study", type=Path, help="study folder (made by `pcdrl study serve`)")
    sim.add_argument("--participants", type=int, default=0,
                     help="default: one block, which answers every (item, condition) once")
    sim.add_argument("--judge", default="", help="one of the eval's judges (default: its training judge)")
    sim.add_argument("--url", default="", help="a running study server (default: serve it on a loopback port here)")
    sim.add_argument("--seed", type=int, default=0, help="seeds the tie-breaks")
    sim.add_argument("--threads", type=int, default=1, help="torch threads for the judge")

    rep = sub.add_parser("report", help="people's accuracy per condition, the RL gain for people, agreement with "
                                        "each judge; STUDY/report/report.html")
    rep.add_argument("study", type=Path, help="study folder")
    rep.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")


def run_study(args: argparse.Namespace) -> int:
    if args.study_verb == "serve":
        return _serve(args)
    if args.study_verb == "simulate":
        return _simulate(args)
    return _report(args)


def _serve(args) -> int:
    from pcdrl.runtime.config_loader import load_config
    from pcdrl.study.config import StudyConfig
    from pcdrl.study.serve import StudyServer, default_study_dir, host_warning, open_study, port_is_free

    folder = args.study or default_study_dir(args.eval_dir)
    # Refuse a bad address before a new study is frozen: a rerun with the right flags must not meet a frozen config.
    host_warning(args.host, args.allow_remote)
    port_is_free(args.host, args.port)
    given = args.config is not None or bool(args.overrides)
    cfg = load_config(StudyConfig, args.config, args.overrides) if given else None
    store, created = open_study(args.eval_dir, folder, cfg)
    server = StudyServer(store, args.host, args.port, args.allow_remote)
    if server.warning:
        print(server.warning, file=sys.stderr)
    answers = len(store.answers())
    print(f"{'started' if created else 'reopened'} study {folder}: {len(store.items)} items, conditions "
          f"{', '.join(store.conditions)}, {store.per_participant} items per participant; {answers} answers so far",
          file=sys.stderr)
    print(f"serving on {server.url} (Ctrl-C stops; answers are saved as they come)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


def _simulate(args) -> int:
    import json

    import torch

    from pcdrl.runtime.config_loader import from_dict
    from pcdrl.runtime.progress import progress_bar
    from pcdrl.simulators.config import JudgeConfig
    from pcdrl.simulators.judge import Judge
    from pcdrl.study.serve import StudyServer
    from pcdrl.study.simulate import simulate
    from pcdrl.study.store import StudyStore

    torch.set_num_threads(max(1, args.threads))
    store = StudyStore(args.study)
    judges = store.frozen["judges"]
    name = args.judge or store.training_judge
    if name not in judges:
        raise ValueError(f"--judge {name}: not a judge of this study's eval; have {', '.join(judges)}")
    participants = args.participants or store.block_size()
    judge = Judge(from_dict(JudgeConfig, judges[name]["config"], source=f"{args.study} (judge {name})"))
    server = None if args.url else StudyServer(store, quiet=True).start()
    try:
        with progress_bar() as bar:
            task = bar.add_task("simulate", total=participants * store.per_participant, status=f"judge:{name}")
            result = simulate(args.url or server.url, judge, participants, args.seed,
                              progress=lambda n: bar.update(task, completed=n))
    finally:
        judge.close()
        if server is not None:
            server.stop()
        store.close()
    print(json.dumps(result, indent=2))
    print(f"now: pcdrl study report {args.study}", file=sys.stderr)
    return 0


def _report(args) -> int:
    from pcdrl.study.report import study_table, write_study_report

    summary = write_study_report(args.study, resamples=args.resamples)
    print(study_table(summary))
    print(f"report: {Path(args.study) / 'report' / 'report.html'}", file=sys.stderr)
    return 0
