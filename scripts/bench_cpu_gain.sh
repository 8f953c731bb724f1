#!/usr/bin/env bash
# The RL gain on two CPU cores: GRPO with the denoised reward (judge_true_pmi, true option only) and a bfloat16
# judge (AVX-512 BF16 CPUs), two seeds side by side on one core each, then `pcdrl eval` on every held-out item
# with the shuffled-labels control. ~33 min of training and ~10 min of eval on the project's 2-core machine.
#
#   INPUTS=runs/signal-inputs OUT=runs/cpu-gain bash scripts/bench_cpu_gain.sh
#
# INPUTS comes from scripts/gpu_rl_signal_inputs.sh (a labelled quickstart PCD; 1,342 train / 554 test items).
set -euo pipefail
cd "$(dirname "$0")/.."
INPUTS=${INPUTS:-runs/signal-inputs}
OUT=${OUT:-runs/cpu-gain}
STEPS=${STEPS:-36}
PCDRL=${PCDRL:-.venv/bin/pcdrl}
export PCDRL_NO_PROGRESS=1
mkdir -p "$OUT"
common=(pcd="$INPUTS/pcd-input" data="$INPUTS/data-random" "heldout_judges=[]" evaluate_pretrained=false
        max_eval_items=16 steps="$STEPS" items_per_step=32 grpo.group_size=8 threads=1 checkpoint_every=6
        "rewards={judge_true_pmi: 1.0}" judge.backend.dtype=bfloat16)
for seed in 0 1; do
  OMP_NUM_THREADS=1 $PCDRL train configs/rl/grpo_concepts.yaml --out "$OUT/seed$seed" seed=$seed "${common[@]}" \
    --resume > "$OUT/train-seed$seed.log" 2>&1 &
done
wait
OMP_NUM_THREADS=2 $PCDRL eval "$OUT/seed0" "$OUT/seed1" --out "$OUT/eval" "controls=[shuffled_labels]" \
  "rows=[prior, random, pretrained, rl]" threads=2 items_per_call=64
cat "$OUT/eval/table.md"
