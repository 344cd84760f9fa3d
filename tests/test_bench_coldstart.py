"""The first-answer bench: its overhead child finds every square, its tables parse (no timings)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import coldstart  # noqa: E402
from bench.rasters import make_raster, squares_for  # noqa: E402


@pytest.mark.parametrize(
    ("standin", "ahead", "stack"), [("sleep", "on", "fresh"), ("busy", "off", "gis")]
)
def test_overhead_child_segments_every_square(tmp_path, standin, ahead, stack):
    raster = tmp_path / "r.tif"
    make_raster(raster, 1100)
    got = coldstart.child_overhead(str(raster), standin, ahead, str(tmp_path), stack)
    assert got["polygons"] == len(squares_for(1100)) and got["stack"] == stack
    assert got["calls"] == 4 and 0 < got["model_s"] <= got["wall_s"]
    # the stand-in's own time: 4 calls of at least 200 ms each, measured alone
    assert 4 * coldstart.SECONDS <= got["nominal_model_s"] <= got["wall_s"]


def test_floor_child_times_the_three_imports():
    got = coldstart.child_floor()
    assert set(got) == {"numpy_s", "rasterio_s", "osgeo_s"}
    assert all(v >= 0 for v in got.values())


def test_import_table_keeps_top_level_modules_only():
    log = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        300 |   torch._C",
            "import time:       500 |    1200000 | torch",
            "import time:       200 |     400000 | rasterio",
            "import time:        50 |      90000 |     rasterio._base",
        ]
    )
    assert coldstart.import_table(log, top=5) == [("torch", 1.2), ("rasterio", 0.4)]


def test_rows_say_met_or_missed():
    def runs(value):
        return [{"overhead_s_per_mpx": value}]

    report = {
        "cold": {"cold_s": [3.0], "import_torch_s": [2.0], "ratio": 1.5, "load_s": 0.5,
                 "warm_1mpx_s": 0.4, "warm_4mpx_s": 1.2},
        "imports": [("torch", 1.2)],
        "overhead": {f"{s}_{a}_{n}": runs(v) for n, v in ((1000, 0.1), (10000, 0.02))
                     for s in ("sleep", "busy") for a in ("on", "off")},
    }  # fmt: skip
    text = "\n".join(coldstart.rows(report, [1000, 10000]))
    assert "1.50x `import torch`" in text and "target ≤ 1.8x: met" in text
    assert "target ≤ 0.08 s/Mpx: missed" in text
    assert "busy/sleep 1.00 (target ≤ 1.5): met" in text
    assert "import floor" not in text and "already imported" not in text  # not measured
    report["floor"] = {"numpy_s": 0.06, "rasterio_s": 0.05, "osgeo_s": 0.04}
    report["overhead"].update(
        {f"{s}_{a}_1000_gis": runs(0.06) for s in ("sleep", "busy") for a in ("on", "off")}
    )
    text = "\n".join(coldstart.rows(report, [1000, 10000]))
    assert "numpy 0.060 + rasterio 0.050 = 0.110 s" in text
    assert "(0.08 s/Mpx) is below this floor" in text
    gis = next(line for line in text.splitlines() if "already imported" in line)
    assert "0.060 / 0.060" in gis and "4.0x better" in gis and "≤ 0.08 s/Mpx: met" in gis


def test_children_get_the_bytecode_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setattr(coldstart, "BYTECODE_CACHE", [])
    assert coldstart._env()["PYTHONDONTWRITEBYTECODE"] == "1"  # no cache: the shell's setting
    coldstart._compile_sources(tmp_path / "pyc")
    env = coldstart._env()
    assert "PYTHONDONTWRITEBYTECODE" not in env and env["PYTHONPYCACHEPREFIX"] == str(
        tmp_path / "pyc"
    )
    assert list((tmp_path / "pyc").rglob("api.cpython-*.pyc"))  # backend/pipeline/api.py
