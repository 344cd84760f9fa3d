"""Issue 15 hostile cases through Processing in real QGIS (offscreen).

Each case must fail with one clear error in the feedback (once), add no layer to the project,
create or change no file, and never run code named by a checkpoint (marker file).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from qgis_helpers import ROOT

pytestmark = pytest.mark.qgis


class _Bomb:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def provider(qgis_processing, qgis_iface):
    from qgis.core import QgsApplication

    import rs2sam_qgis

    instance = rs2sam_qgis.classFactory(None)
    instance.initProcessing()
    yield QgsApplication.processingRegistry().providerById("rs2sam")
    instance.unload()


def _hostile_files(folder: Path, red_square_tif: Path) -> dict[str, Path]:
    """Checkpoints and rasters made in a subprocess of the project venv (torch lives there)."""
    marker = folder / "PWNED"
    script = f"""
import json, os, pickle, sys
import numpy as np, rasterio, torch
from safetensors import safe_open
from safetensors.torch import save_file
sys.path.insert(0, {str(ROOT)!r})
from backend.model.checkpoint import save_checkpoint
from backend.model.rs2sam import build_model
d = {str(folder)!r}
good = os.path.join(d, "tiny.safetensors")
save_checkpoint(build_model("test-tiny"), good)
def rewrite(name, **changes):
    with safe_open(good, framework="pt") as f:
        header = dict(f.metadata()); state = {{k: f.get_tensor(k) for k in f.keys()}}
    for k, v in changes.items():
        if k == "model_config":
            c = json.loads(header[k]); c.update(v); header[k] = json.dumps(c)
        else:
            header[k] = v
    save_file(state, os.path.join(d, name), metadata=header)
open(os.path.join(d, "evil.yaml"), "w").write(
    "model:\\n  _target_: os.system\\n  _args_: ['touch {marker}']\\n")
rewrite("ck_yaml.safetensors", model_config={{"sam2_yaml": os.path.join(d, "evil.yaml")}})
rewrite("ck_bomb.safetensors", model_config={{"fusion_dim": 10**9}})
rewrite("ck_arch.safetensors", architecture="os:system")
src = rasterio.open({str(red_square_tif)!r})
profile = src.profile; profile.update(driver="GPKG"); profile.pop("tiled", None)
for k in ("blockxsize", "blockysize", "compress", "interleave"):
    profile.pop(k, None)
with rasterio.open(os.path.join(d, "ortho.gpkg"), "w", **profile) as dst:
    dst.write(src.read())
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    python = sys.executable  # the interpreter running the suite (make test: the project venv)
    subprocess.run([python, "-c", script], check=True, env=env, cwd=ROOT)
    (folder / "ck_pickle.safetensors").write_bytes(pickle.dumps(_Bomb(marker), protocol=2))
    trunc = folder / "ck_trunc.safetensors"
    data = (folder / "tiny.safetensors").read_bytes()
    trunc.write_bytes(data[: len(data) // 2])
    return {p.stem: p for p in folder.iterdir()} | {"marker": marker}


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_hostile_inputs_through_processing(provider, red_square_tif, tmp_path, clean_project):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsProject

    class Capture(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.errors: list[str] = []

        def reportError(self, error, fatalError=False):
            self.errors.append(error)

    files = _hostile_files(tmp_path, red_square_tif)
    out = tmp_path / "out.gpkg"
    base = {"INPUT": str(red_square_tif), "TEXT": "the red square", "OUTPUT": str(out)}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("sam2 yaml path", {"CHECKPOINT": str(files["ck_yaml"])}, "unknown SAM 2 architecture"),
        ("size bomb", {"CHECKPOINT": str(files["ck_bomb"])}, "outside the supported range"),
        ("architecture", {"CHECKPOINT": str(files["ck_arch"])}, "unknown model architecture"),
        ("pickle", {"CHECKPOINT": str(files["ck_pickle"])}, "is a PyTorch pickle"),
        ("truncated", {"CHECKPOINT": str(files["ck_trunc"])}, "re-export or re-download"),
        (
            "output is the input",
            {
                "INPUT": str(files["ortho"]),
                "MODEL_CONFIG": "standin:red",
                "OUTPUT": str(files["ortho"]),
            },
            "destroy the input",
        ),
        (
            "tile bomb",
            {"MODEL_CONFIG": "standin:red", "GSD": 0.0001},
            "Allow large runs",
        ),
        ("no known word", {"TEXT": "🌊🌊"}, "no word|reads English only|cannot use the text"),
    ]
    before = _snapshot(tmp_path)
    for name, params, expected in cases:
        feedback = Capture()
        with pytest.raises(QgsProcessingException) as raised:
            processing.run("rs2sam:segmentbytext", {**base, **params}, feedback=feedback)
        import re

        texts = [str(raised.value), *feedback.errors]
        hits = [t for t in texts if re.search(expected, t)]
        assert hits, (name, texts)
        assert all(len(re.findall(expected, t)) == 1 for t in hits), (name, texts)  # once
        assert not any("Traceback" in t for t in texts), (name, texts)
        assert QgsProject.instance().mapLayers() == {}, name
        assert _snapshot(tmp_path) == before, name
        assert not files["marker"].exists(), name


def test_allow_large_is_an_advanced_parameter(provider) -> None:
    from qgis.core import QgsProcessingParameterDefinition

    alg = provider.algorithm("segmentbytext")
    param = alg.parameterDefinition("ALLOW_LARGE")
    assert param is not None and param.defaultValue() is False
    assert param.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    assert json.dumps(sys.version_info[:2])  # the interpreter is QGIS's own


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_100_runs_through_the_plugin_task_path_do_not_grow_memory(
    provider, red_square_tif, tmp_path, clean_project
) -> None:
    """Processing and the dock's QgsTask share runner.run_on_backend_thread: 100 runs of it."""
    import gc

    import processing

    baseline = 0
    for i in range(100):
        out = tmp_path / f"r{i % 2}.gpkg"
        result = processing.run(
            "rs2sam:segmentbytext",
            {
                "INPUT": str(red_square_tif),
                "TEXT": "the red square",
                "MODEL_CONFIG": "standin:red",
                "OUTPUT": str(out),
            },
        )
        assert result["POLYGONS"] == 1
        if i == 9:
            gc.collect()
            baseline = _rss()
    gc.collect()
    growth = (_rss() - baseline) / baseline
    print(f"plugin soak: {baseline / 2**20:.1f} MiB -> {_rss() / 2**20:.1f} MiB ({growth:+.2%})")
    assert growth < 0.05
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".aux.xml"))
    assert left == ["r0.gpkg", "r1.gpkg", "red_square.tif"]  # (QGIS writes its .aux.xml)
