#!/usr/bin/env bash
# One-shot GPU check of the published RS2-SAM 2 layout (official-large, random init):
# build on CUDA, bf16 predict time at 1024², batch of 4, peak memory, bf16 vs fp32 agreement,
# official-tiny through import-official and CPU-vs-CUDA agreement. See official_prepare.sh.
#
#   OUT=/some/dir bash tools/gpu/official_check.sh
# Env: OFFICIAL_CHECK_DRY=1 (CPU, official-tiny only), OFFICIAL_CHECK_PY (default python3),
#      OFFICIAL_CHECK_BUDGET_S (default 330: later steps are skipped to stay inside it).
# Results: $OUT/official_results.json, log $OUT/official_log.txt, a SUMMARY {...} line at the end.
set -u -o pipefail
PROJ=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${OUT:-$PWD/official_check_out}
mkdir -p "$OUT"
PY=${OFFICIAL_CHECK_PY:-python3}
SITE="$PROJ/.gpu_official/site"
if [[ "${OFFICIAL_CHECK_DRY:-0}" == "0" && ! -d "$SITE" ]]; then
  echo "missing $SITE: run tools/gpu/official_prepare.sh and carry .gpu_official" >&2; exit 2
fi
export PYTHONPATH="$SITE:$PROJ" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
echo "official_check start $(date -u +%FT%TZ) dry=${OFFICIAL_CHECK_DRY:-0} OUT=$OUT PY=$PY"
command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi -L
timeout -k 10 "${OFFICIAL_CHECK_BUDGET_S:-330}" "$PY" "$PROJ/tools/gpu/official_check.py" \
  --out "$OUT/official_results.json" 2>&1 | tee "$OUT/official_log.txt"
rc=${PIPESTATUS[0]}
echo "official_check done rc=$rc"
exit "$rc"
