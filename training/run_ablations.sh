#!/usr/bin/env bash
# Ablation table of issue 7 at an equal WALL-CLOCK budget: the full nano, nano without the BHFM
# adapters, nano without the MPG dense prompt, and the plain FiLM U-Net, each trained for 30
# min on one torch thread with the same data, curriculum share, recipe and seed
# (training/configs/ablation30_*.yaml), then its final weights (the end of the budget) scored
# on the full val splits with the per-type breakdown.
#   bash training/run_ablations.sh [-j 2] [arm ...]     # default: all four arms, 2 at a time
# Results: runs/ablation30_<arm>/{train_log.csv,val_log.csv,final.safetensors,eval_*.json}; a
# markdown table on stdout at the end. Arms already trained and scored are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1
unset PROJ_LIB
jobs=2
if [ "${1:-}" = "-j" ]; then jobs=$2; shift 2; fi
arms=("$@")
[ ${#arms[@]} -eq 0 ] && arms=(full no_bhfm no_mpg film_unet)

run_arm() {
  local arm=$1 out=runs/ablation30_$1
  if [ ! -f "$out/final.safetensors" ]; then
    "$PY" -m training train --config "training/configs/ablation30_$arm.yaml" resume=auto \
      > "runs/ablation30_$arm.log" 2>&1
  fi
  for set in nwpu dubai; do
    [ -s "$out/eval_$set.json" ] && continue
    "$PY" -m training eval --checkpoint "$out/final.safetensors" --dataset refsegrs \
      --root "data_gen/$set" --split val --by-type --threads 1 --batch-size 8 \
      > "$out/eval_$set.json.tmp" && mv "$out/eval_$set.json.tmp" "$out/eval_$set.json"
  done
}

mkdir -p runs
pids=()
for arm in "${arms[@]}"; do
  run_arm "$arm" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
"$PY" tools/eval_table.py "${arms[@]/#/runs/ablation30_}"
