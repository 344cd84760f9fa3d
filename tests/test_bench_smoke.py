"""The benchmark harness runs at tiny sizes and its correctness checks bite (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--skip", "P4,P5", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| case | size | result |" in proc.stdout
    return json.loads((out / "bench.json").read_text())


def test_pipeline_cases_find_every_square_exactly(quick_report: dict) -> None:
    cases = [
        c for k, v in quick_report["cases"].items() if k.startswith("pipeline_sleep") for c in v
    ]
    assert cases
    for case in cases:
        assert case["polygons"] == case["squares"]
        assert case["min_iou"] >= 0.99
        assert case["max_pieces_per_square"] == 1  # the seam square is not split
        assert case["extra_polygons"] == 0
        assert 0 < case["model_s"] <= case["total_s"]


def test_summary_and_machine_are_reported(quick_report: dict) -> None:
    summary = quick_report["summary"]
    assert {
        "P1 stand-in overhead s/Mpx (worst size)",
        "P2 peak RSS growth smallest->largest MiB",
        "P3 s/Mpx max deviation from median",
    } <= set(summary)
    assert quick_report["machine"]["cpu_cores"] >= 1
    assert quick_report["cases"]["vectorize"][0]["polygons"] > 1000


def test_square_geometry_helper_matches_raster(tmp_path: Path) -> None:
    import rasterio

    from bench.rasters import PIXEL_M, make_raster

    squares = make_raster(tmp_path / "r.tif", 1200)
    with rasterio.open(tmp_path / "r.tif") as ds:
        rgb = ds.read()
        sq = squares[-1]
        minx, miny, maxx, maxy = sq.map_box()
        row, col = ds.index(minx + PIXEL_M / 2, maxy - PIXEL_M / 2)
    assert (row, col) == (sq.row, sq.col)
    assert tuple(rgb[:, sq.row, sq.col]) == (220, 30, 30)
    assert tuple(rgb[:, sq.row - 1, sq.col]) != (220, 30, 30)


def test_write_doc_replaces_only_the_marked_results(tmp_path: Path) -> None:
    from bench.__main__ import BEGIN, END, write_doc

    doc = tmp_path / "benchmarks.md"
    write_doc(doc, "| old |\n")
    assert BEGIN in doc.read_text() and "| old |" in doc.read_text()
    doc.write_text(doc.read_text() + "\n## Analysis\nhand-written\n")
    write_doc(doc, "| new |\n")
    text = doc.read_text()
    assert "| new |" in text and "| old |" not in text
    assert text.endswith("## Analysis\nhand-written\n")
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_samgeo_conditions_and_batch_rows_are_checked(quick_report: dict) -> None:
    samgeo = [c for k, v in quick_report["cases"].items() if k.startswith("samgeo_") for c in v]
    assert samgeo and all(c["squares_ok"] for c in samgeo)
    assert all(c["calls"] >= 1 and c["wall_s"] > 0.2 * c["calls"] for c in samgeo)
    batch = [c for k, v in quick_report["cases"].items() if k.startswith("batch_") for c in v]
    assert {c["workers"] for c in batch} >= {1, 2}
    for case in batch:
        assert case["failures"] == 0 and case["chunks"] == 2
        assert case["polygons"] == 2 * 2  # two squares per 1100 px raster, each whole
        assert 0 < case["model_share"] <= 1
