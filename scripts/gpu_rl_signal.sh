#!/usr/bin/env bash
# What the CPU-signal changes (output-centric labels, same-source distractors, the judge_true_pmi reward) do at a
# scale two CPU cores cannot reach: the judge runs on one GPU, everything else on the machine's CPU cores.
#
#   ART=.gpu/art OUT=runs/gpu-signal bash scripts/gpu_rl_signal.sh
#
# ART holds what `scripts/gpu_rl_signal_inputs.sh` builds on any machine: pcd-{input,output,both}/ (one PCD,
# three label kinds) and data-{random,same_source}/ (`pcdrl data build` runs). Stages, each in parallel:
#   1. judge-eval: every held-out item, rows prior/random/pretrained/oracle, 3 label kinds x 2 distractor modes;
#   2. GRPO (STEPS x 64 items x 8 samples): the label kind that judge-eval found best, against
#      input labels + random distractors + judge_logprob (the earlier GPU setting);
#   3. eval: every held-out item, pretrained vs RL, shuffled and paraphrased labels.
# Prints one table; every stage writes an ordinary run folder under OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
ART=${ART:?set ART to the folder with pcd-*/ and data-*/ (scripts/gpu_rl_signal_inputs.sh)}
OUT=${OUT:-runs/gpu-signal}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-62}
JUDGE_BATCH=${JUDGE_BATCH:-256}
THREADS=${THREADS:-3}
ITEMS_PER_STEP=${ITEMS_PER_STEP:-64}
GROUP=${GROUP:-8}
MAX_ITEMS=${MAX_ITEMS:-0}   # held-out items scored by judge-eval and eval (0 = all); a CPU rehearsal sets a few
PY=${PY:-python3}
mkdir -p "$OUT"
pcdrl() { PCDRL_NO_PROGRESS=1 OMP_NUM_THREADS=$THREADS $PY -m pcdrl "$@"; }
judge="{name: smollm2, backend: {kind: hf, model: smollm2-135m-instruct, device: $DEVICE, batch_size: $JUDGE_BATCH}}"

# Convert the judge's weights once, before parallel stages would all start converting them.
$PY -c "from pcdrl.models.loading import resolve_model_path; print(resolve_model_path('smollm2-135m-instruct'))"

echo "== 1. judge-eval: label kinds x distractor modes ($(date +%T))"
for kind in input output both; do
  for mode in random same_source; do
    pcdrl judge-eval configs/eval/judge_eval.yaml --out "$OUT/judge-eval/$kind-$mode" data="$ART/data-$mode" \
      pcd="$ART/pcd-$kind" "judges=[$judge]" items_per_call=1024 threads="$THREADS" max_items_per_family="$MAX_ITEMS" \
      > "$OUT/judge-eval-$kind-$mode.log" 2>&1 &
  done
done
wait
best=$($PY - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
acc = {k: json.load(open(f"{out}/judge-eval/{k}-same_source/summary.json"))["accuracy"]["smollm2"]["all"]["pretrained"]
       for k in ("input", "output", "both")}
print(max(acc, key=acc.get))
EOF
)
echo "best label kind on same-source distractors: $best"

echo "== 2. GRPO, $STEPS steps x $ITEMS_PER_STEP items x $GROUP samples ($(date +%T))"
variants=(
  "input-random-logprob:input:random:{judge_logprob: 1.0}"
  "$best-random-logprob:$best:random:{judge_logprob: 1.0}"
  "$best-same_source-logprob:$best:same_source:{judge_logprob: 1.0}"
  "$best-same_source-true_pmi:$best:same_source:{judge_true_pmi: 1.0}"
)
for v in "${variants[@]}"; do
  IFS=: read -r name kind mode rewards <<<"$v"
  pcdrl train configs/rl/grpo_concepts.yaml --out "$OUT/train/$name" pcd="$ART/pcd-$kind" data="$ART/data-$mode" \
    judge.backend.device="$DEVICE" judge.backend.batch_size="$JUDGE_BATCH" "heldout_judges=[]" "rewards=$rewards" steps="$STEPS" items_per_step="$ITEMS_PER_STEP" grpo.group_size="$GROUP" \
    checkpoint_every="$STEPS" evaluate_pretrained=false max_eval_items=16 threads="$THREADS" \
    > "$OUT/train-$name.log" 2>&1 &
done
wait

echo "== 3. eval on every held-out item, with label controls ($(date +%T))"
for v in "${variants[@]}"; do
  IFS=: read -r name _ <<<"$v"
  pcdrl eval "$OUT/train/$name" --out "$OUT/eval/$name" "controls=[shuffled_labels, paraphrased_labels]" \
    "rows=[prior, random, pretrained, rl, oracle]" items_per_call=1024 threads="$THREADS" max_items="$MAX_ITEMS" \
    > "$OUT/eval-$name.log" 2>&1 &
done
wait
echo "== done ($(date +%T))"
$PY scripts/gpu_rl_signal_table.py "$OUT" | tee "$OUT/table.md"
