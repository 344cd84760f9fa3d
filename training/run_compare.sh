#!/usr/bin/env bash
# Issue-18 comparison at an equal WALL-CLOCK budget: RS2-SAM 2 nano vs lgce-nano, each trained
# for 60 min on one torch thread, side by side, with the same data, curriculum, recipe and seed
# (training/configs/compare60_*.yaml), then its final weights scored on the full val splits
# with the per-type breakdown.
#   bash training/run_compare.sh [arm ...]       # default: nano lgce_nano, both at once
# Results: runs/compare60_<arm>/{train_log.csv,val_log.csv,final.safetensors,eval_*.json} and a
# markdown table on stdout. Arms already trained and scored are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
unset PROJ_LIB
arms=("$@")
[ ${#arms[@]} -eq 0 ] && arms=(nano lgce_nano)

run_arm() {
  local arm=$1 out=runs/compare60_$1
  if [ ! -f "$out/final.safetensors" ]; then
    "$PY" -m training train --config "training/configs/compare60_$arm.yaml" resume=auto \
      > "runs/compare60_$arm.log" 2>&1
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
done
for pid in "${pids[@]}"; do wait "$pid"; done
"$PY" tools/eval_table.py "${arms[@]/#/runs/compare60_}"
