#!/usr/bin/env bash
# Prepare the one-shot GPU check of the published RS2-SAM 2 layout in THIS checkout.
#
#   bash tools/gpu/official_prepare.sh          # from the repo root, after make setup
#
# Makes .gpu_official/ (git-ignored) with pure-Python copies of what the GPU machine lacks
# (sam2, hydra, omegaconf, antlr4, iopath, portalocker, torchscale, fairscale, einops) and the
# cp312 manylinux wheel of sentencepiece, unpacked (the GPU machine runs Python 3.12). Then,
# with the device tool:
#   run(command="bash tools/gpu/official_check.sh", carry=[".gpu_official"], timeout_s=420)
# Dry run on the CPU first (official-tiny, same script):
#   OUT=/tmp/oc OFFICIAL_CHECK_DRY=1 OFFICIAL_CHECK_PY=$PWD/.venv/bin/python bash tools/gpu/official_check.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
SP=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf .gpu_official; mkdir -p .gpu_official/site .gpu_official/wheels
for p in sam2 hydra omegaconf antlr4 iopath portalocker torchscale fairscale einops; do
  cp -r "$SP/$p" .gpu_official/site/
done
.venv/bin/pip download --quiet sentencepiece==0.2.3 --python-version 3.12 --only-binary=:all: \
  --no-deps -d .gpu_official/wheels
.venv/bin/python -m zipfile -e .gpu_official/wheels/sentencepiece-0.2.3-cp312-*.whl .gpu_official/site/
rm -rf .gpu_official/wheels
find .gpu_official -name __pycache__ -type d -prune -exec rm -rf {} +
find .gpu_official/site/sam2 -name "*.so" -delete  # built here for 3.11; sam2 falls back without it
du -sh .gpu_official
