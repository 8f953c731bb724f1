#!/usr/bin/env bash
# Build the inputs of scripts/gpu_rl_signal.sh on any machine (CPU is fine: ~15 min on 2 cores):
# a labelled PCD in three label kinds, and continuation questions with random and same-source distractors.
#
#   PCD=runs/quickstart/pcd-pretrain/pcd ART=.gpu/art bash scripts/gpu_rl_signal_inputs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PCD=${PCD:?set PCD to a pretrained PCD checkpoint folder (pcdrl pretrain)}
ART=${ART:?set ART to the folder to write}
N_ITEMS=${N_ITEMS:-2000}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PCDRL_NO_PROGRESS=1
mkdir -p "$ART"
for mode in random same_source; do
  [ -f "$ART/data-$mode/summary.json" ] || $PY -m pcdrl data build configs/data/quickstart.yaml --out "$ART/data-$mode" \
    attributes.enabled=false continuation.n_items="$N_ITEMS" continuation.distractors="$mode"
done
if [ ! -f "$ART/pcd-both/concepts.json" ] || ! grep -q '"label_kind"' "$ART/pcd-both/concepts.json"; then
  cp -r "$PCD" "$ART/pcd-both"
  $PY -m pcdrl label "$ART/pcd-both" --config configs/pcd/label_quickstart.yaml --out "$ART/label" \
    label.kind=both label.max_concepts=12
fi
# The other two kinds: the same concepts and statistics, labels re-rendered (no second labelling run).
for kind in input output; do
  rm -rf "$ART/pcd-$kind.tmp" && cp -r "$ART/pcd-both" "$ART/pcd-$kind.tmp"
  $PY - "$ART/pcd-both/concepts.json" "$ART/pcd-$kind.tmp/concepts.json" "$kind" <<'PY'
import json, sys
from pcd.output_labels import rerender_concepts
concepts = json.load(open(sys.argv[1]))
json.dump(rerender_concepts(concepts, sys.argv[3]), open(sys.argv[2], "w"), indent=1)
PY
  rm -rf "$ART/pcd-$kind" && mv "$ART/pcd-$kind.tmp" "$ART/pcd-$kind"
done
du -sh "$ART"/*
