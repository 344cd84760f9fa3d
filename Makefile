# Segment by text (RS2-SAM 2 for QGIS). `make help` lists the targets.
SHELL        := /bin/bash
VENV         ?= .venv
PY           := $(VENV)/bin/python
PIP          := $(VENV)/bin/pip
STAMP        := $(VENV)/.setup-ok
CONFIG       ?= training/configs/nano_cpu.yaml
NPROC        ?= 1
ARGS         ?=
CHECKPOINT   ?=
DATASET      ?= refsegrs
ROOT         ?= data_gen/nwpu
SPLIT        ?= val
DATA_SRC     ?= ../shared/data
export QT_QPA_PLATFORM ?= offscreen
export HF_HUB_OFFLINE := 1
# rasterio's bundled PROJ must not see Debian's proj.db (environment.md §2.2)
unexport PROJ_LIB PROJ_DATA

APT_PKGS := qgis python3-qgis qgis-providers xvfb python3-venv gdal-bin python3-gdal

.PHONY: help setup test test-fast test-qgis lint demo data train eval bench plugin clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP)  ## install QGIS (apt, when missing) and build .venv; idempotent and fast when nothing changed

$(STAMP): pyproject.toml
	@if ! /usr/bin/python3 -c "import qgis.core, venv" 2>/dev/null || ! command -v xvfb-run >/dev/null; then \
	  echo "== installing QGIS, python3-qgis, xvfb with apt (about 3 minutes) =="; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PKGS); \
	fi
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -e ".[dev,scale]"
	SAM2_BUILD_CUDA=0 $(PIP) install --quiet --no-build-isolation --no-deps sam2==1.1.0
	$(PIP) install --quiet --no-build-isolation --no-deps torchscale==0.3.0 fairscale==0.4.13 "einops>=0.6" sentencepiece==0.2.3  # .[official], see pyproject
	$(PY) -c "import qgis.core, torch, sam2, open_clip, rasterio, shapely, pyproj; from osgeo import gdal_array; print('setup ok: torch', torch.__version__)"
	@touch $@

test: setup  ## the whole suite: unit tests and real-QGIS tests (offscreen), CPU only
	@export HOME=$$(mktemp -d) XDG_DATA_HOME=$$(mktemp -d) XDG_CONFIG_HOME=$$(mktemp -d); \
	  $(PY) -m pytest -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose" >&2; fi; exit $$rc

test-fast: setup  ## unit tests only (no QGIS)
	$(PY) -m pytest -q -m "not slow and not qgis and not desktop"

lint: setup  ## ruff + bandit + the Qt6 checks (flake8-qgis, tools/qt6_enums.py) on the plugin
	$(VENV)/bin/ruff check backend training rs2sam_qgis tests bench tools
	$(VENV)/bin/bandit -q -r rs2sam_qgis backend -c .bandit.yaml
	$(PY) -m flake8 --select=QGS1,QGS4 --extend-ignore=QGS105,QGS402 rs2sam_qgis  # QGIS 4 / Qt6 (flake8-qgis)
	$(PY) tools/qt6_enums.py rs2sam_qgis  # every short Qt5 enum name, not only flake8-qgis's list

demo: setup  ## segment the bundled real GeoTIFFs with the bundled weights; writes demo_out/
	$(PY) -m backend.demo --out demo_out

train: setup  ## make train CONFIG=training/configs/X.yaml NPROC=2 ARGS="key=value ..."
	@if [ "$(NPROC)" = "1" ]; then $(PY) -m training train --config $(CONFIG) $(ARGS); \
	else $(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m training train --config $(CONFIG) $(ARGS); fi

eval: setup  ## make eval CHECKPOINT=path DATASET=refsegrs ROOT=dir SPLIT=val ARGS="--by-type --mode native"
	$(PY) -m training eval --checkpoint $(CHECKPOINT) --dataset $(DATASET) --root $(ROOT) --split $(SPLIT) $(ARGS)

data: setup data_gen/nwpu/stats.json data_gen/dubai/stats.json data_gen/packed/nwpu/pack_info.json data_gen/packed/dubai/pack_info.json  ## generate the NWPU and Dubai referring sets into data_gen/ (seeded; kept when present) and their packed shards (data_gen/packed/, ~39 MB)

data_gen/nwpu/stats.json:
	$(PY) -m training build-refer --source nwpu --root $(DATA_SRC)/nwpu_vhr10 --out data_gen/nwpu --seed 0

data_gen/dubai/stats.json:
	$(PY) -m training build-refer --source dubai --root $(DATA_SRC)/dubai_aerial_semseg --out data_gen/dubai --seed 0

data_gen/packed/%/pack_info.json: data_gen/%/stats.json
	$(PY) -m training pack --root data_gen/$* --out data_gen/packed/$* --overwrite

bench: setup  ## speed/memory benchmarks; prints a table, writes bench_out/bench.json
	$(PY) -m bench --out bench_out --doc docs/benchmarks.md

plugin: setup  ## build dist/rs2sam_qgis.zip (plugin + vendored backend)
	$(PY) tools/build_plugin.py --out dist/rs2sam_qgis.zip

clean:  ## remove build outputs (keeps .venv)
	rm -rf dist build demo_out bench_out .pytest_cache .ruff_cache
