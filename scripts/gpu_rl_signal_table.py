"""The table of `scripts/gpu_rl_signal.sh`: judge-eval by label kind and distractor mode, then GRPO runs.

    python scripts/gpu_rl_signal_table.py runs/gpu-signal
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_rates import judge_rate  # noqa: E402


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _cell(value, ci) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def judge_eval_table(out: Path) -> list[str]:
    lines = ["| labels | distractors | items | prior | random | pretrained | oracle | wall s |", "|---|---|---|---|---|---|---|---|"]
    for kind in ("input", "output", "both"):
        for mode in ("random", "same_source"):
            summary = _load(out / "judge-eval" / f"{kind}-{mode}" / "summary.json")
            if summary is None:
                lines.append(f"| {kind} | {mode} | failed: see judge-eval-{kind}-{mode}.log |||||")
                continue
            acc, ci = summary["accuracy"]["smollm2"]["all"], summary["ci95"]["smollm2"]["all"]
            cells = [_cell(acc[row], ci[row]) if row in acc else "-" for row in ("prior", "random", "pretrained", "oracle")]
            lines.append(f"| {kind} | {mode} | {summary['n_items']} | {' | '.join(cells)} | {summary['wall_seconds']} |")
    return lines


def rl_table(out: Path) -> list[str]:
    lines = ["| variant | judged | judge expl/s | train s | pretrained | rl | rl - pretrained | shuffled: rl - pretrained "
             "| paraphrased: rl - pretrained |", "|---|---|---|---|---|---|---|---|---|"]
    for run in sorted((out / "train").glob("*")):
        summary = _load(out / "eval" / run.name / "summary.json")
        if summary is None or not (run / "metrics.jsonl").is_file():
            lines.append(f"| {run.name} | failed: see train-{run.name}.log / eval-{run.name}.log ||||||||")
            continue
        measured = judge_rate(run)
        rate, train_s, judged = measured["rate"], measured["step_s"], measured["judged"]
        acc, ci = summary["accuracy"]["smollm2"], summary["ci95"]["smollm2"]
        gain = summary["gain"]["smollm2"]
        controls = []
        for name in ("shuffled_labels", "paraphrased_labels"):
            entry = summary["controls"].get(name, {}).get("smollm2")
            controls.append(f"{entry['gain']:+.3f} [{entry['gain_ci95'][0]:+.3f}, {entry['gain_ci95'][1]:+.3f}]"
                            if entry else "-")
        lines.append(
            f"| {run.name} | {judged} | {rate:.0f} | {train_s:.0f} | {_cell(acc['pretrained'], ci['pretrained'])} | "
            f"{_cell(acc['rl'], ci['rl'])} | {gain['rl_minus_pretrained']:+.3f} [{gain['ci95'][0]:+.3f}, "
            f"{gain['ci95'][1]:+.3f}] | {controls[0]} | {controls[1]} |")
    return lines


def main(out: str) -> None:
    folder = Path(out)
    print("Judge SmolLM2, held-out items, accuracy [95% CI]\n")
    print("\n".join(judge_eval_table(folder)))
    print("\nGRPO on concept sets, judge SmolLM2; eval on every held-out item\n")
    print("\n".join(rl_table(folder)))


if __name__ == "__main__":
    main(sys.argv[1])
