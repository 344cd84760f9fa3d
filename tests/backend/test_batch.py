"""Batch segmentation (backend.batch): chunking, cross-chunk merge, local engines, resume, errors.

CPU only and fast: 12 rasters of 360 x 300 px (2 x 2 chunks each, two CRSs) + a corrupt file,
the red stand-in (or a tile-dependent one), 128 px tiles.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyogrio
import pytest
import shapely
from batch_data import ARGS, TILE, make_set, objects, write_raster

from backend.batch import BatchOptions, run_batch
from backend.batch.job import BatchInterrupted
from backend.batch.output import reproject
from backend.batch.spec import SegmenterSpec
from backend.cli import main
from backend.pipeline import segment_raster
from backend.standins import RedSegmenter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch_in")
    return folder, make_set(folder)


def run_cli(capsys, *args):
    code = main(["batch", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def read_layer(path):
    meta, _, wkb, fields = pyogrio.raw.read(str(path))
    geoms = list(shapely.from_wkb(wkb))
    records = [
        dict(zip(meta["fields"], values, strict=True)) for values in zip(*fields, strict=True)
    ]
    return meta, geoms, records


def iou(a, b):
    return a.intersection(b).area / a.union(b).area


@pytest.fixture(scope="module")
def local_run(rasters, tmp_path_factory):
    """The single-process reference run (exit 1: the corrupt file)."""
    folder, _ = rasters
    out = tmp_path_factory.mktemp("batch_out") / "job"
    options = BatchOptions(
        inputs=[str(folder / "*.tif")], queries=["red things"], out_dir=str(out),
        segmenter=SegmenterSpec("standin", {"name": "red", "image_size": TILE}),
        tile_px=TILE, overlap_px=16, chunk_tiles=2, gsd_m=None, progress=False,
    )  # fmt: skip
    summary = run_batch(options)
    return out, summary


def test_local_run_matches_the_single_raster_pipeline_and_reports_the_corrupt_file(
    rasters, local_run
):
    folder, paths = rasters
    out, summary = local_run
    assert summary.exit_code == 1
    assert [f["raster"] for f in summary.failures] == [str(folder / "corrupt.tif")]
    assert summary.chunks == 12 * 4 and summary.done == 48 and summary.failed == 0
    meta, geoms, records = read_layer(out / "red_things.gpkg")
    assert "32633" in meta["crs"]  # the first raster's CRS
    assert {r["source_raster"] for r in records} == {str(p) for p in paths}
    assert [name for name, _ in meta["fields"].tolist() and []] == []
    for field in ("prompt", "score", "area_m2", "pixels", "model", "checkpoint_sha256",
                  "source", "gsd_m", "threshold", "created_at", "source_raster"):  # fmt: skip
        assert field in meta["fields"]
    out_crs = meta["crs"]
    for k, path in enumerate(paths):
        ref = segment_raster(path, "red things", RedSegmenter(image_size=TILE), gsd_m=None,
                             tile_px=TILE, overlap_px=16)  # fmt: skip
        ref_geoms = reproject(ref.polygons, ref.crs, _wkt(out_crs), 4.0)
        mine = [
            (g, r) for g, r in zip(geoms, records, strict=True) if r["source_raster"] == str(path)
        ]
        assert len(mine) == len(ref_geoms) == len(objects(k))  # whole objects, no duplicates
        for g_ref, attrs in zip(ref_geoms, ref.attributes, strict=True):
            best = max(mine, key=lambda m: iou(m[0], g_ref))
            assert iou(best[0], g_ref) >= 0.999
            assert best[1]["pixels"] == attrs["pixels"]
            assert best[1]["area_m2"] == pytest.approx(attrs["area_m2"], rel=1e-7)
            assert best[1]["score"] == pytest.approx(attrs["score"], abs=1e-6)
        rings = [g for g, _ in mine if len(g.interiors)]
        assert len(rings) == 1  # the ring across the row border kept its hole


def _wkt(crs_text):
    from pyproj import CRS

    return CRS.from_user_input(crs_text).to_wkt()


def test_chunks_reproduce_the_whole_raster_run_exactly(tmp_path):
    """A tile-dependent stand-in: only identical tiles and blend weights give equal polygons."""
    write_raster(tmp_path / "a.tif", 0)
    ref = segment_raster(tmp_path / "a.tif", "x", __import__("batch_data").TileMeanSegmenter(),
                         gsd_m=None, tile_px=TILE, overlap_px=16)  # fmt: skip
    summary = run_batch(
        BatchOptions(
            inputs=[str(tmp_path / "a.tif")],
            queries=["x"],
            out_dir=str(tmp_path / "out"),
            segmenter=SegmenterSpec("factory", {"target": "batch_data:make_tile_mean"}),
            tile_px=TILE,
            overlap_px=16,
            chunk_tiles=2,
            gsd_m=None,
            progress=False,
        )  # fmt: skip
    )
    assert summary.exit_code == 0 and summary.chunks == 4
    _, geoms, records = read_layer(tmp_path / "out" / "x.gpkg")
    assert len(geoms) == len(ref.polygons)
    scores = sorted(a["score"] for a in ref.attributes)
    assert len(set(scores)) > 2  # the stand-in really gives tile-dependent scores
    for g_ref, attrs in zip(ref.polygons, ref.attributes, strict=True):
        match = [i for i, g in enumerate(geoms) if g.equals(g_ref)]
        assert len(match) == 1
        assert records[match[0]]["score"] == pytest.approx(attrs["score"], abs=1.5e-6)
        assert records[match[0]]["pixels"] == attrs["pixels"]


def test_two_local_processes_give_the_same_output(rasters, local_run, tmp_path):
    folder, _ = rasters
    out_ref, _ = local_run
    summary = run_batch(
        BatchOptions(
            inputs=[str(folder / "*.tif")],
            queries=["red things"],
            out_dir=str(tmp_path / "j"),
            segmenter=SegmenterSpec("standin", {"name": "red", "image_size": TILE}),
            tile_px=TILE,
            overlap_px=16,
            chunk_tiles=2,
            gsd_m=None,
            progress=False,
            workers=2,
        )  # fmt: skip
    )
    assert summary.exit_code == 1 and summary.done == 48
    assert _features(tmp_path / "j" / "red_things.gpkg") == _features(out_ref / "red_things.gpkg")


def _features(path):
    """Every feature as (WKB, attributes without created_at): comparable across jobs."""
    _, geoms, records = read_layer(path)
    return [
        (shapely.to_wkb(shapely.normalize(g)), {k: v for k, v in r.items() if k != "created_at"})
        for g, r in zip(geoms, records, strict=True)
    ]


def test_interrupted_job_resumes_to_the_same_output(rasters, local_run, tmp_path):
    folder, _ = rasters
    out_ref, _ = local_run
    options = BatchOptions(
        inputs=[str(folder / "*.tif")], queries=["red things"], out_dir=str(tmp_path / "j"),
        segmenter=SegmenterSpec("standin", {"name": "red", "image_size": TILE}),
        tile_px=TILE, overlap_px=16, chunk_tiles=2, gsd_m=None, progress=False, stop_after=7,
    )  # fmt: skip
    with pytest.raises(BatchInterrupted):
        run_batch(options)
    assert not (tmp_path / "j" / "red_things.gpkg").exists()  # no partial output
    db = sqlite3.connect(tmp_path / "j" / "rs2sam_batch.sqlite")
    done_before = dict(db.execute("SELECT id, status FROM chunks WHERE status='done'"))
    db.close()
    assert 7 <= len(done_before) < 48
    options.stop_after = None
    summary = run_batch(options)
    assert summary.skipped == len(done_before)
    assert summary.processed == 48 - len(done_before)
    features = _features(tmp_path / "j" / "red_things.gpkg")
    assert features == _features(out_ref / "red_things.gpkg")
    assert len({f[0] for f in features}) == len(features)  # no duplicate polygon
    # a third run does nothing but rebuild the same output
    again = run_batch(options)
    assert again.processed == 0 and again.skipped == 48
    assert _features(tmp_path / "j" / "red_things.gpkg") == features


def test_sigterm_then_rerun_gives_the_clean_output(tmp_path):
    folder = tmp_path / "in"
    make_set(folder, n=2, corrupt=False)
    env = {k: v for k, v in os.environ.items() if k not in ("PROJ_LIB", "PROJ_DATA")}
    env["PYTHONPATH"] = str(ROOT)

    def cmd(out):
        return [sys.executable, "-m", "backend", "batch", str(folder / "*.tif"), "--text", "red",
                "--out", str(out), "--standin", "sleep:0.05", "--quiet", *ARGS]  # fmt: skip

    proc = subprocess.Popen(cmd(tmp_path / "j"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    manifest = tmp_path / "j" / "rs2sam_batch.sqlite"
    done = 0
    deadline = time.monotonic() + 120
    while done < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if manifest.exists():
            try:
                with sqlite3.connect(manifest) as db:
                    done = db.execute("SELECT COUNT(*) FROM chunks WHERE status='done'").fetchone()[
                        0
                    ]
            except sqlite3.OperationalError:
                pass
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    with sqlite3.connect(manifest) as db:
        done_at_kill = db.execute("SELECT COUNT(*) FROM chunks WHERE status='done'").fetchone()[0]
    assert 2 <= done_at_kill < 8
    assert not (tmp_path / "j" / "red.gpkg").exists()
    resumed = subprocess.run(cmd(tmp_path / "j"), cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["skipped"] == done_at_kill and summary["processed"] == 8 - done_at_kill
    clean = subprocess.run(cmd(tmp_path / "clean"), cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    assert _features(tmp_path / "j" / "red.gpkg") == _features(tmp_path / "clean" / "red.gpkg")


def test_cli_summary_exit_1_and_failure_lines(capsys, rasters, tmp_path):
    folder, _ = rasters
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / 'r00.tif'}\n# a comment\n\n{folder / 'corrupt.tif'}\n")
    code, out, err = run_cli(capsys, listing, "--text", "red", "--text", "blue", "--out",
                             tmp_path / "j", "--standin", "red", "--quiet", *ARGS)  # fmt: skip
    assert code == 1
    summary = json.loads(out)
    assert summary["chunks"] == 8 and summary["done"] == 8
    assert set(summary["outputs"]) == {"red", "blue"}
    assert summary["polygons"] == {"red": 5, "blue": 5}  # the stand-in ignores the text
    assert "corrupt.tif" in err and err.startswith("failed: ")


def test_geoparquet_output(capsys, rasters, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    folder, _ = rasters
    code, out, _ = run_cli(capsys, folder / "r01.tif", "--text", "red", "--out", tmp_path / "j",
                           "--standin", "red", "--quiet", "--format", "parquet", "--crs",
                           "EPSG:4326", *ARGS)  # fmt: skip
    assert code == 0
    table = pq.read_table(tmp_path / "j" / "red.parquet")
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"
    assert geo["columns"]["geometry"]["crs"]["id"]["code"] == 4326
    geoms = shapely.from_wkb(table.column("geometry").to_pylist())
    assert len(geoms) == 5 and all(-180 < g.centroid.x < 180 for g in geoms)
    assert table.column("source_raster").to_pylist() == [str(folder / "r01.tif")] * 5


def assert_one_line(code, err, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_inputs_exit_2_with_one_line(capsys, rasters, tmp_path, monkeypatch):
    folder, _ = rasters
    base = ["--text", "red", "--standin", "red", "--quiet"]
    code, _, err = run_cli(capsys, tmp_path / "none*.tif", "--out", tmp_path / "a", *base)
    assert_one_line(code, err, "matches no file")
    write_raster(tmp_path / "rgba.tif", 0, bands=4)
    code, _, err = run_cli(capsys, folder / "r00.tif", tmp_path / "rgba.tif", "--out",
                           tmp_path / "b", *base)  # fmt: skip
    assert_one_line(code, err, "different band counts", "--bands")
    code, _, err = run_cli(capsys, folder / "r00.tif", "--out", "/proc", *base)
    assert_one_line(code, err, "not writable")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, folder / "r00.tif", "--out", blocker / "j", *base)
    assert_one_line(code, err, "does not exist")
    code, _, err = run_cli(capsys, folder / "r00.tif", "--out", tmp_path / "c", "--engine",
                           "spark", *base)  # fmt: skip
    assert_one_line(code, err, "'spark'", "local or ray")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.delitem(sys.modules, "backend.batch.ray_engine", raising=False)
    code, _, err = run_cli(capsys, folder / "r00.tif", "--out", tmp_path / "d", "--engine",
                           "ray", *base)  # fmt: skip
    assert_one_line(code, err, "needs Ray", "pip install")
    assert not (tmp_path / "d" / "rs2sam_batch.sqlite").exists()


def test_changed_settings_are_refused_and_restart_starts_anew(capsys, rasters, tmp_path):
    folder, _ = rasters
    args = [folder / "r00.tif", "--text", "red", "--out", tmp_path / "j", "--standin", "red",
            "--quiet", *ARGS]  # fmt: skip
    assert run_cli(capsys, *args)[0] == 0
    code, _, err = run_cli(capsys, *args, "--threshold", "0.7")
    assert_one_line(code, err, "other settings", "threshold", "--restart")
    code, out, _ = run_cli(capsys, *args, "--threshold", "0.7", "--restart")
    assert code == 0 and json.loads(out)["processed"] == 4
    # output-only options may change: the layer is rebuilt from the stored chunks
    code, out, _ = run_cli(capsys, *args, "--threshold", "0.7", "--min-area", "200")
    assert code == 0 and json.loads(out)["processed"] == 0
    assert (
        json.loads(out)["polygons"]["red"] == 3
    )  # corner, interior and ring (not the 25 m² squares)


def _worker_pids(parent: int) -> list[int]:
    """PIDs of the spawned local worker processes of ``parent`` (not the resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(stat[1]) == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")
def test_killing_one_worker_loses_nothing_and_a_rerun_completes(tmp_path):
    """SIGKILL one of two worker processes mid-job: its chunks are recorded as failed, the other
    worker goes on, and re-running the command gives exactly the clean run's output."""
    folder = tmp_path / "in"
    make_set(folder, n=2, corrupt=False)
    env = {k: v for k, v in os.environ.items() if k not in ("PROJ_LIB", "PROJ_DATA")}
    env["PYTHONPATH"] = str(ROOT)

    def cmd(out):
        return [sys.executable, "-m", "backend", "batch", str(folder / "*.tif"), "--text", "red",
                "--out", str(out), "--standin", "sleep:0.3", "--quiet", "--workers", "2",
                *ARGS]  # fmt: skip

    proc = subprocess.Popen(cmd(tmp_path / "j"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        workers = _worker_pids(proc.pid)
    assert len(workers) == 2, "the two worker processes did not start"
    manifest = tmp_path / "j" / "rs2sam_batch.sqlite"
    done = 0
    while done < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            with sqlite3.connect(manifest) as db:
                done = db.execute("SELECT COUNT(*) FROM chunks WHERE status='done'").fetchone()[0]
        except sqlite3.OperationalError:
            pass
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode in (0, 1), err  # 1 when the killed worker held a chunk
    assert "Traceback" not in err
    if proc.returncode == 1:
        assert "worker process died" in err
    resumed = subprocess.run(cmd(tmp_path / "j"), cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    clean = subprocess.run(cmd(tmp_path / "clean"), cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    features = _features(tmp_path / "j" / "red.gpkg")
    assert features == _features(tmp_path / "clean" / "red.gpkg")
    assert len({f[0] for f in features}) == len(features)  # no duplicate polygon
