#!/usr/bin/env bash
# Prepare the one-shot GPU training of the default weights (issue 16) in THIS checkout.
# Run from the repository root after `make setup` and `make data`:
#   bash tools/gpu/prepare.sh
# It writes .gpu/site.tar.xz (git-ignored): the pure-Python packages the GPU machine lacks
# (sam2, open_clip, hydra, omegaconf, antlr4, iopath, portalocker, ftfy, wcwidth), compressed,
# and checks that the packed shards exist and that checkout + carried paths fit the device
# tool's 64 MiB. Then (tools/gpu/README.md):
#   run(command="bash tools/gpu/train_default.sh", carry=[".gpu", "data_gen/packed"], timeout_s=450)
# Dry run on this CPU first (tiny step counts, same script):
#   OUT=/tmp/gpu_dry GPU_DRY=1 GPU_PY=$PWD/.venv/bin/python bash tools/gpu/train_default.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
PY=${PY:-.venv/bin/python}
for s in nwpu dubai; do
  if [[ ! -f data_gen/packed/$s/train.json.gz || ! -f data_gen/packed/$s/val.json.gz ]]; then
    echo "error: data_gen/packed/$s is missing: run \`make data\` first" >&2; exit 2
  fi
done
SP=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
for p in sam2 open_clip hydra omegaconf antlr4 iopath portalocker ftfy wcwidth; do
  [[ -d "$SP/$p" ]] || { echo "error: $SP/$p not found (run make setup)" >&2; exit 2; }
  cp -r "$SP/$p" "$stage/"
done
for d in sam2 open_clip_torch hydra_core omegaconf antlr4_python3_runtime iopath portalocker ftfy wcwidth; do
  cp -r "$SP"/${d}-*.dist-info "$stage/" 2>/dev/null || true
done
find "$stage" -name __pycache__ -type d -prune -exec rm -rf {} +
rm -rf .gpu; mkdir -p .gpu
tar -C "$stage" -cJf .gpu/site.tar.xz .
# what the device tool sends: tracked + untracked-not-ignored files, plus the carried paths
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
carried=$(du -cb .gpu data_gen/packed | tail -1 | cut -f1)
total=$(( tree + carried ))
printf 'checkout %.1f MB + .gpu %.1f MB + data_gen/packed %.1f MB = %.1f MB (limit 64 MiB = 67.1 MB)\n' \
  "$(echo "$tree/1000000" | bc -l)" "$(echo "$(du -sb .gpu | cut -f1)/1000000" | bc -l)" \
  "$(echo "$(du -sb data_gen/packed | cut -f1)/1000000" | bc -l)" "$(echo "$total/1000000" | bc -l)"
if (( total > 64 * 1024 * 1024 - 2000000 )); then
  echo "error: the device tool would refuse this working tree (over 64 MiB with a 2 MB margin)" >&2
  exit 2
fi
echo "ready: run(command=\"bash tools/gpu/train_default.sh\", carry=[\".gpu\", \"data_gen/packed\"], timeout_s=450)"
