"""Hostile suite, second round (issue 25): the batch job's folder, manifest and chunk files.

Two jobs on one folder (the second is refused, naming the first; a dead job's lock is taken
over), an input raster replaced between runs (redone, not mixed), each kind of damaged or
foreign chunk file (recomputed and reported in one line, never unpickled), and refusals that
must leave nothing behind (no folder, no manifest; inputs hashed before and after).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from batch_data import ARGS, write_raster
from test_batch import _features
from test_hostile_outputs import refused, snapshot

from backend.batch.lock import LOCK_NAME, FolderLock
from backend.cli import main

ROOT = Path(__file__).resolve().parents[2]
BASE = ["--text", "red", "--standin", "red", "--quiet", *ARGS]


class _Bomb:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def two(tmp_path: Path) -> list[Path]:
    """Two rasters (2 x 2 chunks each) in ``tmp_path/in``."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [folder / f"r{k}.tif" for k in range(2)]
    for k, path in enumerate(paths):
        write_raster(path, k)
    return paths


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, dict, str]:
    code = main(["batch", *map(str, args)])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def clean_features(capsys: pytest.CaptureFixture[str], inputs: list[Path], folder: Path) -> list:
    """The layer a clean run over ``inputs`` writes (copied first: the inputs stay as they are)."""
    fresh = folder / "inputs"
    fresh.mkdir(parents=True)
    copies = [shutil.copy2(p, fresh / p.name) for p in inputs]
    code, _, err = run(capsys, *copies, "--out", folder / "job", *BASE)
    assert code == 0, err
    return [(wkb, {k: v for k, v in r.items() if k != "source_raster"})
            for wkb, r in _features(folder / "job" / "red.gpkg")]  # fmt: skip


def features(path: Path) -> list:
    return [(wkb, {k: v for k, v in r.items() if k != "source_raster"})
            for wkb, r in _features(path)]  # fmt: skip


# ------------------------------------------------------------------ refusals leave nothing
@pytest.mark.parametrize(
    "case", ["no match", "bad glob", "garbage list", "workers 0", "engine", "fifo", "nul list"]
)
def test_a_refused_job_leaves_no_folder_and_no_manifest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, two: list[Path], case: str
) -> None:
    out = tmp_path / "job"
    garbage = tmp_path / "in" / "list.txt"
    garbage.write_bytes(bytes(range(256)) * 4)
    nul_list = tmp_path / "in" / "nul.txt"
    nul_list.write_text("r0.tif\x00/etc/passwd\n")
    fifo = tmp_path / "in" / "pipe.tif"
    os.mkfifo(fifo)
    args, words = {
        "no match": ([tmp_path / "in" / "none*.tif"], ("matches no file",)),
        "bad glob": ([tmp_path / "in" / "[.tif"], ("matches no file",)),
        "garbage list": ([garbage], ("list.txt", "UTF-8")),
        "workers 0": ([two[0], "--workers", "0"], ("--workers 0", ">= 1")),
        "engine": ([two[0], "--engine", "spark"], ("'spark'", "local or ray")),
        "fifo": ([fifo], ("pipe.tif", "not a regular file", "FIFO")),
        "nul list": ([nul_list], ("does not exist",)),
    }[case]
    refused(capsys, tmp_path, main, ["batch", *args, "--out", out, *BASE], *words)
    assert not out.exists()
    # the folder holds no job afterwards: a job with any settings may use it
    code, summary, err = run(capsys, two[0], "--out", out, *BASE, "--threshold", "0.6")
    assert code == 0 and summary["done"] == 4, err


def test_a_job_whose_model_fails_to_load_leaves_no_manifest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, two: list[Path]
) -> None:
    bad = tmp_path / "in" / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint" * 64)
    out = tmp_path / "job"
    args = [two[0], "--text", "red", "--checkpoint", bad, "--device", "cpu", "--quiet",
            "--out", out, *ARGS]  # fmt: skip
    code, _, err = run(capsys, *args)
    assert code == 2 and "Traceback" not in err, err
    assert not out.exists()


# ------------------------------------------------------------------ one job per folder
def test_a_held_folder_is_refused_naming_the_holder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, two: list[Path]
) -> None:
    out = tmp_path / "job"
    out.mkdir()
    with FolderLock(out):
        line = refused(capsys, tmp_path, main, ["batch", two[0], "--out", out, *BASE],
                       "in use by another batch job", f"pid {os.getpid()}",
                       socket.gethostname(), "started 20")  # fmt: skip
    assert "wait for it to finish" in line
    assert not (out / "rs2sam_batch.sqlite").exists()
    code, summary, _ = run(capsys, two[0], "--out", out, *BASE)  # released: runs
    assert code == 0 and summary["done"] == 4
    assert not (out / LOCK_NAME).exists()  # the lock file goes with the job


def test_the_lock_of_a_dead_job_is_taken_over(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, two: list[Path]
) -> None:
    out = tmp_path / "job"
    out.mkdir()
    dead = {"pid": 2**22 + 12345, "host": socket.gethostname(), "started": "2026-01-01T00:00:00"}
    (out / LOCK_NAME).write_text(json.dumps(dead))  # left by a SIGKILLed job: nobody holds it
    code, summary, err = run(capsys, *two, "--out", out, *BASE)
    assert code == 0 and summary["done"] == 8, err
    assert features(out / "red.gpkg") == clean_features(capsys, two, tmp_path / "clean")


def test_two_concurrent_runs_on_one_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, two: list[Path]
) -> None:
    out = tmp_path / "job"
    slow = ["--text", "red", "--standin", "sleep:0.3", "--quiet", *ARGS]
    first = subprocess.Popen(
        [sys.executable, "-m", "backend", "batch", *map(str, two), "--out", str(out), *slow],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lock = out / LOCK_NAME
    for _ in range(600):  # until the first job holds the folder (or has ended)
        if first.poll() is not None or (lock.exists() and str(first.pid) in lock.read_text()):
            break
        time.sleep(0.05)
    assert first.poll() is None, "the first job ended before the second started"
    code, _, err = run(capsys, *two, "--out", out, *slow)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and "Traceback" not in err
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert json.loads(stdout)["done"] == 8  # 2 rasters x 4 chunks, not twice
    clean = tmp_path / "clean"
    fresh = clean / "inputs"
    fresh.mkdir(parents=True)
    copies = [shutil.copy2(p, fresh / p.name) for p in two]
    assert run(capsys, *copies, "--out", clean / "job", *slow)[0] == 0
    assert features(out / "red.gpkg") == features(clean / "job" / "red.gpkg")


# ------------------------------------------------------------------ a changed input
@pytest.mark.parametrize("keep_time", [False, True])
def test_a_raster_replaced_between_runs_is_redone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, two: list[Path], keep_time: bool
) -> None:
    out = tmp_path / "job"
    assert run(capsys, *two, "--out", out, *BASE)[0] == 0
    st = two[1].stat()
    write_raster(two[1], 5)  # other objects, same path (and the same size)
    if keep_time:  # `cp --preserve`: only the content hash can tell
        os.utime(two[1], ns=(st.st_atime_ns, st.st_mtime_ns))
    code, summary, err = run(capsys, *two, "--out", out, *BASE)
    assert code == 0, err
    assert summary["processed"] == 4 and summary["skipped"] == 4
    changed = [w for w in summary["warnings"] if "changed since the last run" in w]
    assert len(changed) == 1 and "r1.tif" in changed[0]
    assert features(out / "red.gpkg") == clean_features(capsys, two, tmp_path / "clean")
    code, summary, _ = run(capsys, *two, "--out", out, *BASE)  # unchanged now: nothing to do
    assert code == 0 and summary["processed"] == 0 and not summary["warnings"]


# ------------------------------------------------------------------ damaged chunk files
def _npz(path: Path, **arrays: object) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _damage(kind: str, chunk: Path, other: Path, marker: Path) -> None:
    data = chunk.read_bytes()
    with np.load(chunk) as z:
        arrays = {k: z[k] for k in z.files}
    if kind == "truncated":
        chunk.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        chunk.write_bytes(b"")
    elif kind == "random":
        chunk.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif kind == "pickled":
        _npz(chunk, **{**arrays, "score": np.array([_Bomb(marker)], dtype=object)})
    elif kind == "pickle file":
        chunk.write_bytes(pickle.dumps(_Bomb(marker)))
    elif kind == "wrong keys":
        _npz(chunk, a=np.zeros(3))
    elif kind == "wrong shapes":
        _npz(chunk, **{**arrays, "score": np.zeros((2, 2)), "pixels": np.zeros(7)})
    elif kind == "bad offsets":
        _npz(chunk, **{**arrays, "map_off": arrays["map_off"] + 5})
    elif kind == "bad wkb":
        _npz(chunk, **{**arrays, "map_wkb": np.full_like(arrays["map_wkb"], 7)})
    elif kind == "foreign":  # a whole, valid chunk file of another chunk
        chunk.write_bytes(other.read_bytes())
    else:
        raise AssertionError(kind)


KINDS = ["truncated", "empty", "random", "pickled", "pickle file", "wrong keys",
         "wrong shapes", "bad offsets", "bad wkb", "foreign"]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_chunk_files_are_recomputed_and_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, two: list[Path], kind: str
) -> None:
    out = tmp_path / "job"
    assert run(capsys, *two, "--out", out, *BASE)[0] == 0
    reference = features(out / "red.gpkg")
    chunks = sorted((out / ".rs2sam_batch" / "chunks").glob("*.npz"))
    assert len(chunks) == 8
    marker = tmp_path / "PWNED"
    _damage(kind, chunks[1], chunks[2], marker)
    code, summary, err = run(capsys, *two, "--out", out, *BASE)
    assert code == 0 and "Traceback" not in err, err
    assert summary["processed"] == 1 and summary["skipped"] == 7
    damaged = [w for w in summary["warnings"] if "damaged" in w]
    assert len(damaged) == 1 and chunks[1].name in damaged[0] and "\n" not in damaged[0]
    assert features(out / "red.gpkg") == reference
    assert not marker.exists(), "a chunk file ran code"


def test_the_damage_report_is_one_line_on_stderr(tmp_path: Path, two: list[Path]) -> None:
    out = tmp_path / "job"
    cmd = [sys.executable, "-m", "backend", "batch", *map(str, two), "--out", str(out), *BASE]
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
    for chunk in sorted((out / ".rs2sam_batch" / "chunks").glob("*.npz"))[:5]:
        chunk.write_bytes(chunk.read_bytes()[:100])
    before = snapshot(tmp_path / "in")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "5 stored chunk files were damaged" in lines[0], proc.stderr
    assert "and 2 more" in lines[0] and "Traceback" not in proc.stderr
    assert snapshot(tmp_path / "in") == before


def test_a_changed_source_of_a_vrt_mosaic_is_redone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, two: list[Path]
) -> None:
    vrt = tmp_path / "in" / "mosaic.vrt"
    build = f"from osgeo import gdal; gdal.BuildVRT({str(vrt)!r}, [{str(two[0])!r}])"
    subprocess.run([sys.executable, "-c", build], check=True)
    out = tmp_path / "job"
    assert run(capsys, vrt, "--out", out, *BASE)[0] == 0
    vrt_bytes = vrt.read_bytes()
    time.sleep(0.01)
    write_raster(two[0], 5)  # the mosaic's source changes; the .vrt file does not
    assert vrt.read_bytes() == vrt_bytes
    code, summary, err = run(capsys, vrt, "--out", out, *BASE)
    assert code == 0 and summary["processed"] == 4, err
    assert any("its source files" in w for w in summary["warnings"])
    assert run(capsys, vrt, "--out", tmp_path / "clean", *BASE)[0] == 0  # a fresh job
    assert features(out / "red.gpkg") == features(tmp_path / "clean" / "red.gpkg")
