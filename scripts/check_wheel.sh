#!/usr/bin/env bash
# `make test-wheel`: does the wheel a user installs work on its own?
#   1. build the wheel from a clean copy of the work tree and check its contents (scripts/wheel_contents.py);
#   2. install it into a fresh venv (torch==2.13.0 first, then the wheel under constraints.txt, as `make install`);
#   3. from a folder outside the repository, with that venv's `pcdrl`: --help, then a tiny-model pipeline
#      pretrain -> label -> data build -> train (2 steps) -> eval, by the shipped `configs/...` names.
# Everything is written under one temporary folder, removed on success and kept (and named) on failure.
# Usage: scripts/check_wheel.sh [BUILD_PYTHON]   (default .venv/bin/python: any python with pip)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_PYTHON="${1:-$REPO/.venv/bin/python}"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pcdrl-wheel-check.XXXXXX")"
# One torch thread: two on a busy 2-core machine run 10-100x slower. Nothing may reach a hub or the user's cache.
export OMP_NUM_THREADS=1 PCDRL_NO_PROGRESS=1 WANDB_MODE=offline HF_HUB_OFFLINE=1 PCDRL_CACHE="$WORK/cache"
unset PYTHONPATH VIRTUAL_ENV
# Removing the venv's ~30,000 files takes a minute or two on a slow disk: it is timed too.
trap 'status=$?; if [ $status -eq 0 ]; then t=$SECONDS; rm -rf "$WORK"; echo "removed $WORK in $((SECONDS - t)) s"; else echo "wheel check FAILED (exit $status); its files are kept in $WORK" >&2; fi' EXIT

START=$SECONDS
LAST=$SECONDS
step() { echo "--- [$((SECONDS - START)) s since start] $1"; }
took() { echo "    took $((SECONDS - LAST)) s"; LAST=$SECONDS; }
need() {  # need FILE...: each file must exist, or the step failed without saying so
  for file in "$@"; do
    [ -e "$file" ] || { echo "wheel check: $file was not written" >&2; exit 1; }
  done
}

step "build the wheel"
WHEEL="$("$BUILD_PYTHON" "$REPO/scripts/wheel_contents.py" build "$WORK/build" | tail -1)"
"$BUILD_PYTHON" "$REPO/scripts/wheel_contents.py" check "$WHEEL"
took

step "install $(basename "$WHEEL") into a clean venv"
"$PYTHON" -m venv "$WORK/venv"
VENV_PY="$WORK/venv/bin/python"
# torch first, pinned: the CPU build on local disk (a looser spec pulls a multi-GB CUDA build); then the
# wheel with everything it pulls in pinned by constraints.txt, as `make install` does. --no-compile: the
# run compiles only what it imports, and a venv of fewer files installs (and is removed) in half the time.
"$VENV_PY" -m pip install -q --no-compile torch==2.13.0
"$VENV_PY" -m pip install -q --no-compile -c "$REPO/constraints.txt" "$WHEEL"
took

mkdir "$WORK/elsewhere"
cd "$WORK/elsewhere"  # no repository files here: configs/... must come from the wheel
PCDRL="$WORK/venv/bin/pcdrl"
step "pcdrl --help"
where="$("$VENV_PY" -c 'import pcdrl, sys; print(pcdrl.__file__)')"
case "$where" in
  "$WORK/venv/"*) ;;
  *) echo "wheel check: pcdrl imports from $where, not from the clean venv" >&2; exit 1 ;;
esac
help="$("$PCDRL" --help)"
for verb in pretrain label data train eval sweep quickstart serve; do
  grep -q "$verb" <<<"$help" || { echo "wheel check: pcdrl --help does not list '$verb'" >&2; exit 1; }
done
took

step "tiny model and corpus"
"$VENV_PY" "$REPO/scripts/tiny_model.py" tiny >/dev/null
MODEL="$PWD/tiny/model"
CORPUS="$PWD/tiny/corpus.txt"
need "$MODEL/config.json" "$CORPUS"
took

# The overrides shrink each shipped config to the tiny model (as the `pipeline` fixture of tests/conftest.py).
step "pcdrl pretrain configs/pcd/quickstart.yaml"
"$PCDRL" pretrain configs/pcd/quickstart.yaml --out pretrain \
  pcd.subject_model="$MODEL" pcd.read_layer=1 pcd.n_concepts=16 pcd.k=4 pcd.k_aux=8 \
  corpus.path="$CORPUS" corpus.max_windows=64 window.prefix_len=4 window.middle_len=4 window.suffix_len=4 \
  train.steps=2 train.batch_size=4 'train.baselines=[]' train.eval_windows=4 >/dev/null
need pretrain/summary.json pretrain/pcd/config.json pretrain/pcd/concepts.json
took

step "pcdrl label --config configs/pcd/label_quickstart.yaml"
"$PCDRL" label pretrain/pcd --config configs/pcd/label_quickstart.yaml --out label \
  label.simulator_model="$MODEL" label.explainer_model="$MODEL" label.label_windows=200 label.max_concepts=3 \
  label.min_examples=3 label.score_positives=3 label.score_negatives=3 >/dev/null
need label/summary.json
took

# Built-in chat prompts (attributes.prompts: builtin): the build reads behaviors/data/chat_prompts.yaml from the wheel.
step "pcdrl data build configs/data/quickstart.yaml"
"$PCDRL" data build configs/data/quickstart.yaml --out data \
  subject_model="$MODEL" layer=1 pcd=pretrain/pcd generation.model="$MODEL" \
  continuation.corpus.path="$CORPUS" continuation.n_items=40 continuation.prefix_len=4 continuation.middle_len=4 \
  continuation.continuation_tokens=3 attributes.max_prompts=24 attributes.max_new_tokens=6 attributes.min_items=1 \
  attributes.read_last=3 'split.heldout_attributes=[]' split.test_fraction=0.5 >/dev/null
need data/summary.json data/dataset
took

step "pcdrl train configs/rl/grpo_concepts.yaml steps=2"
"$PCDRL" train configs/rl/grpo_concepts.yaml --out grpo pcd=pretrain/pcd data=data \
  "judge={name: tiny, backend: {kind: hf, model: $MODEL, batch_size: 8}}" \
  "heldout_judges=[{name: tiny2, template: terse, backend: {kind: hf, model: $MODEL}}]" \
  policy.k=2 grpo.group_size=2 items_per_step=4 steps=2 max_eval_items=2 lr=0.05 >/dev/null
need grpo/summary.json grpo/config.yaml grpo/checkpoints/step_000002
took

step "pcdrl eval grpo --config configs/eval/eval.yaml"
"$PCDRL" eval grpo --config configs/eval/eval.yaml --out grpo-eval max_items=8 \
  fidelity.simulator_model="$MODEL" fidelity.label_windows=200 fidelity.min_examples=3 fidelity.score_positives=3 \
  fidelity.score_negatives=3 fidelity_concepts=3 examples=3 items_per_call=4 bootstrap_resamples=200 >/dev/null
need grpo-eval/summary.json grpo-eval/table.md grpo-eval/report.html grpo-eval/items.json
took

# The study's pages, templates and CSS come from the wheel: simulated participants answer through them, then the report.
step "pcdrl study simulate / report on grpo-eval"
"$PCDRL" study serve grpo-eval --port 0 >serve.out 2>serve.err &
SERVE_PID=$!
for _ in $(seq 1 60); do grep -q "serving on" serve.out 2>/dev/null && break; sleep 0.5; done
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
grep -q "serving on http://127.0.0.1:" serve.out || { cat serve.err; echo "pcdrl study serve did not start"; exit 1; }
"$PCDRL" study simulate grpo-eval/study --participants 2 >/dev/null
"$PCDRL" study report grpo-eval/study --resamples 200 >/dev/null
need grpo-eval/study/study.sqlite grpo-eval/study/report/report.html grpo-eval/study/report/summary.json
took

echo "wheel check passed in $((SECONDS - START)) s: $(basename "$WHEEL") installs into a clean venv and runs" \
  "pretrain -> label -> data -> train -> eval -> study from $PWD"
