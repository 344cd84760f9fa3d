#!/usr/bin/env bash
# Ablation table of issue 7: the full nano, nano without BHFM adapters, nano without the MPG
# dense prompt, and the plain FiLM U-Net, each trained with the same data, recipe and number
# of optimiser steps (training/configs/ablation_*.yaml), then scored on the full val splits
# with the per-type breakdown. Runs the arms one after another (each uses `threads` cores).
#   bash training/run_ablations.sh [arm ...]      # default: all four arms
# Results: runs/ablation_<arm>/{train_log.csv,val_log.csv,curves.png,best.safetensors} and
# runs/ablation_<arm>/eval_{nwpu,dubai}.json; a markdown table on stdout at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1
unset PROJ_LIB
arms=("$@")
[ ${#arms[@]} -eq 0 ] && arms=(full no_bhfm no_mpg film_unet)
for arm in "${arms[@]}"; do
  out=runs/ablation_$arm
  if [ ! -f "$out/best.safetensors" ] || [ ! -f "$out/metrics.json" ]; then
    "$PY" -m training train --config "training/configs/ablation_$arm.yaml" resume=auto
  fi
  for set in nwpu dubai; do
    "$PY" -m training eval --checkpoint "$out/best.safetensors" --dataset refsegrs \
      --root "data_gen/$set" --split val --by-type --threads 1 --batch-size 8 \
      > "$out/eval_$set.json"
  done
done
"$PY" tools/eval_table.py "${arms[@]/#/runs/ablation_}"
