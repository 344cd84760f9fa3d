"""Reliability suite: hostile inputs and faults against the CLI and the API (issue 15).

Every CLI case asserts the exit status, ONE line on stderr that names the bad value and says
what to do, no traceback, and the files left behind: nothing new, nothing changed (inputs are
hashed before and after). Groups: rasters, CRSs, bboxes, AOIs, outputs, checkpoints, devices,
arguments, resource bombs, signals, concurrent writers, API shapes. The malicious checkpoints
try to create a marker file; it must never exist.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyogrio
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from safetensors import safe_open
from safetensors.torch import save_file

from backend.cli import main
from backend.errors import InputError, ResourceError
from backend.model.checkpoint import save_checkpoint
from backend.model.rs2sam import build_model
from backend.pipeline import segment_array, segment_raster, validate_inputs
from backend.pipeline.plan import MAX_TILES
from backend.standins import RedSegmenter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_data as md

ROOT = Path(__file__).resolve().parents[2]
X0, Y0 = md.UTM33_ORIGIN


class _Bomb:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _rewrite(src: Path, dst: Path, **changes: Any) -> Path:
    with safe_open(str(src), framework="pt") as f:
        header = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys()}
    for key, value in changes.items():
        if key == "model_config":
            config = json.loads(header["model_config"])
            config.update(value)
            header[key] = json.dumps(config)
        else:
            header[key] = value
    save_file(state, str(dst), metadata=header)
    return dst


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Every input the cases use, made once (seeded)."""
    d = tmp_path_factory.mktemp("world")
    w = SimpleNamespace(dir=d, marker=d / "PWNED")
    image = md.paint(md.background(128, 128), md.rect_mask(128, 128, 20, 30, 60, 90))
    w.raster = md.write_geotiff(d / "in.tif", image, transform=md.utm_transform())
    w.nocrs = md.write_geotiff(d / "nocrs.tif", image, transform=md.utm_transform(), crs=None)
    w.allnodata = md.write_geotiff(
        d / "nodata.tif", np.zeros((3, 64, 64), np.uint16), transform=md.utm_transform(), nodata=0
    )
    # a raster in a CRS with negative coordinates (west of Greenwich, south of the equator)
    w.negative = md.write_geotiff(
        d / "negative.tif",
        image,
        transform=from_origin(-43.30, -22.90, 1e-5, 1e-5),
        crs="EPSG:4326",
    )
    big = (np.random.default_rng(0).integers(0, 255, (3, 1024, 1024))).astype(np.uint8)
    w.truncated = md.write_geotiff(d / "truncated.tif", big, transform=md.utm_transform())
    size = w.truncated.stat().st_size
    with open(w.truncated, "r+b") as f:
        f.truncate(size // 2)
    w.empty = d / "empty.tif"
    w.empty.write_bytes(b"")
    w.text = d / "notes.tif"
    w.text.write_text("not a raster\n")
    w.folder = d / "a_folder.tif"
    w.folder.mkdir()
    # a GeoPackage raster: the output most likely to be confused with the input
    w.gpkg_raster = d / "ortho.gpkg"
    with rasterio.open(
        w.gpkg_raster,
        "w",
        driver="GPKG",
        width=128,
        height=128,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=md.utm_transform(),
    ) as dst:
        dst.write(image)
    w.link_to_gpkg = d / "link.gpkg"
    w.link_to_gpkg.symlink_to(w.gpkg_raster)
    w.vrt = d / "mosaic.vrt"
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from osgeo import gdal; gdal.BuildVRT({str(w.vrt)!r}, [{str(w.gpkg_raster)!r}])",
        ],
        check=True,
    )
    # a 10^6 x 10^6 px virtual raster (a few bytes on disk): a tile bomb
    w.huge = d / "huge.vrt"
    w.huge.write_text(
        w.vrt.read_text()
        .replace('rasterXSize="128"', 'rasterXSize="1000000"')
        .replace('rasterYSize="128"', 'rasterYSize="1000000"')
    )
    w.points = d / "points.geojson"
    w.points.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},'
        '"geometry":{"type":"Point","coordinates":[0,0]}}]}'
    )
    w.existing = d / "existing.gpkg"
    w.existing.write_bytes(b"keep me")
    w.plainfile = d / "plain.txt"
    w.plainfile.write_text("x")
    # checkpoints: a valid tiny one and its hostile variants
    w.ckpt = d / "tiny.safetensors"
    save_checkpoint(build_model("test-tiny"), w.ckpt)
    evil_yaml = d / "evil.yaml"
    evil_yaml.write_text(f"model:\n  _target_: os.system\n  _args_: ['touch {w.marker}']\n")
    w.ck_yaml = _rewrite(
        w.ckpt, d / "ck_yaml.safetensors", model_config={"sam2_yaml": str(evil_yaml)}
    )
    w.ck_dotdot = _rewrite(
        w.ckpt,
        d / "ck_dotdot.safetensors",
        model_config={"sam2_yaml": "../../../../../../../" + str(evil_yaml)},
    )
    w.ck_hub = _rewrite(w.ckpt, d / "ck_hub.safetensors", model_config={"clip_model": "hf-hub:x/y"})
    w.ck_bomb = _rewrite(w.ckpt, d / "ck_bomb.safetensors", model_config={"fusion_dim": 10**9})
    w.ck_ctx = _rewrite(w.ckpt, d / "ck_ctx.safetensors", model_config={"context_length": 10**8})
    w.ck_version = _rewrite(w.ckpt, d / "ck_version.safetensors", format_version="99")
    w.ck_arch = _rewrite(w.ckpt, d / "ck_arch.safetensors", architecture="os:system")
    w.ck_pickle = d / "ck_pickle.safetensors"
    torch.save({"model": _Bomb(w.marker)}, w.ck_pickle)
    w.ck_raw = d / "ck_raw.pt"
    w.ck_raw.write_bytes(pickle.dumps(_Bomb(w.marker), protocol=4))
    w.ck_trunc = d / "ck_trunc.safetensors"
    w.ck_trunc.write_bytes(w.ckpt.read_bytes()[: w.ckpt.stat().st_size // 2])
    w.ck_random = d / "ck_random.safetensors"
    w.ck_random.write_bytes(np.random.default_rng(1).bytes(4096))
    w.out_dir = d / "out"
    w.out_dir.mkdir()
    return w


def _snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(folder))] = (0, os.readlink(path))
        elif path.is_file():
            found[str(path.relative_to(folder))] = (
                path.stat().st_size,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return found


@dataclass(frozen=True)
class Case:
    """One hostile CLI call: arguments (``{name}`` = an attribute of ``world``) and expectations."""

    id: str
    group: str
    args: tuple[str, ...]
    value: str  # regex: the line names the bad value
    fix: str  # regex: the line says what to do
    code: int = 2


def _c(id: str, group: str, args: str, value: str, fix: str, code: int = 2) -> Case:
    return Case(id, group, tuple(args.split("|")), value, fix, code)


R = "segment|{raster}|--text|the red roof|--out|{out}|--standin|red"
CASES = [
    # rasters: missing, corrupt, odd
    _c(
        "missing",
        "raster",
        "segment|{dir}/nope.tif|--text|x|--out|{out}|--standin|red",
        "nope.tif",
        "does not exist",
    ),
    _c(
        "empty-file",
        "raster",
        "segment|{empty}|--text|x|--out|{out}|--standin|red",
        "empty.tif",
        "raster|GDAL",
    ),
    _c(
        "text-file",
        "raster",
        "segment|{text}|--text|x|--out|{out}|--standin|red",
        "notes.tif",
        "raster|GDAL",
    ),
    _c(
        "folder",
        "raster",
        "segment|{folder}|--text|x|--out|{out}|--standin|red",
        "a_folder.tif",
        "raster|file",
    ),
    _c(
        "truncated",
        "raster",
        "segment|{truncated}|--text|x|--out|{out}|--standin|red|--gsd|native",
        r"truncated\.tif.*rows \d+-\d+, columns \d+-\d+",
        "re-export or re-download",
    ),
    _c(
        "no-crs",
        "raster",
        "segment|{nocrs}|--text|x|--out|{out}|--standin|red",
        "nocrs.tif|no CRS",
        "--assume-crs",
    ),
    _c(
        "all-nodata",
        "raster",
        "segment|{allnodata}|--text|x|--out|{out}|--standin|red",
        "nodata.tif",
        "nothing to segment",
    ),
    _c("band-5", "raster", R + "|--bands|5,5,5", "5", "band"),
    _c("band-0", "raster", R + "|--bands|0", "0", "band"),
    _c("band-text", "raster", R + "|--bands|red", "red", "band numbers"),
    # CRSs
    _c("bbox-crs", "crs", R + "|--bbox|0,0,1,1|--bbox-crs|EPSG:999999", "EPSG:999999", "CRS"),
    _c(
        "assume-crs",
        "crs",
        "segment|{nocrs}|--text|x|--out|{out}|--standin|red|--assume-crs|nonsense",
        "nonsense",
        "CRS",
    ),
    _c("aoi-crs", "crs", R + "|--aoi|POLYGON((0 0,1 0,1 1,0 0))|--aoi-crs|EPSG:0", "EPSG:0", "CRS"),
    # bboxes
    _c(
        "bbox-outside",
        "bbox",
        R + "|--bbox|0,0,10,10",
        "0, 0, 10, 10|0.0, 0.0, 10.0, 10.0|0,0,10,10",
        "inside",
    ),
    _c("bbox-reversed", "bbox", R + "|--bbox|10,0,5,1", "10", "min >= max|swap|MINX"),
    _c("bbox-three", "bbox", R + "|--bbox|1,2,3", "1,2,3", "4 numbers"),
    _c("bbox-nan", "bbox", R + "|--bbox|nan,0,1,1", "nan", "finite"),
    _c("bbox-words", "bbox", R + "|--bbox|west,south,east,north", "west", "4 numbers"),
    _c("bbox-4326-far", "bbox", R + "|--bbox|100,10,101,11|--bbox-crs|EPSG:4326", "100", "inside"),
    # AOIs
    _c(
        "aoi-other-crs",
        "aoi",
        R + "|--aoi|POLYGON((13 52,13.1 52,13.1 52.1,13 52.1,13 52))",
        "13",
        "--aoi-crs",
    ),
    _c("aoi-bad-wkt", "aoi", R + "|--aoi|POLYGON((0 0, 1 1))", "POLYGON", "WKT|polygon"),
    _c("aoi-missing-file", "aoi", R + "|--aoi|{dir}/nope.gpkg", "nope.gpkg", "vector file|WKT"),
    _c("aoi-points", "aoi", R + "|--aoi|{points}", "points.geojson", "polygon"),
    # outputs: the input itself, links, sidecars of a VRT, existing files, bad places
    _c(
        "out-is-input",
        "output",
        "segment|{gpkg_raster}|--text|x|--out|{gpkg_raster}|--standin|red|--overwrite",
        "ortho.gpkg",
        "another output",
    ),
    _c(
        "out-link-to-input",
        "output",
        "segment|{gpkg_raster}|--text|x|--out|{link_to_gpkg}|--standin|red|--overwrite",
        "link.gpkg",
        "another output",
    ),
    _c(
        "out-is-vrt-source",
        "output",
        "segment|{vrt}|--text|x|--out|{gpkg_raster}|--standin|red|--overwrite",
        "ortho.gpkg",
        "another output",
    ),
    _c(
        "out-exists",
        "output",
        R.replace("{out}", "{existing}"),
        "existing.gpkg",
        "--overwrite|another name",
    ),
    _c(
        "out-no-folder",
        "output",
        R.replace("{out}", "{dir}/missing/o.gpkg"),
        "missing",
        "create it|another",
    ),
    _c("out-shp", "output", R.replace("{out}", "{dir}/o.shp"), "o.shp", ".gpkg"),
    _c("out-is-folder", "output", R.replace("{out}", "{out_dir}"), "out", r"\.gpkg|file name"),
    _c(
        "out-under-file",
        "output",
        R.replace("{out}", "{plainfile}/o.gpkg"),
        "plain.txt",
        "not a folder|another",
    ),
    # checkpoints (all of these try to run code or allocate terabytes)
    _c(
        "ck-missing",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{dir}/none.safetensors"),
        "none.safetensors",
        "not found|download|path",
    ),
    _c(
        "ck-sam2-yaml-path",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{ck_yaml}"),
        "evil.yaml",
        "never a file|known",
    ),
    _c(
        "ck-sam2-yaml-dotdot",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{ck_dotdot}"),
        r"\.\./",
        "never a file|known",
    ),
    _c(
        "ck-hub-clip",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{ck_hub}"),
        "hf-hub",
        "not allowed|plain",
    ),
    _c(
        "ck-size-bomb",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{ck_bomb}"),
        "fusion_dim=1000000000",
        "damaged|not for this backend",
    ),
    _c(
        "ck-context-bomb",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{ck_ctx}"),
        "context_length=100000000",
        "damaged|not for this backend",
    ),
    _c(
        "ck-architecture",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{ck_arch}"),
        "os:system",
        r"knows .*rs2sam2",
    ),
    _c(
        "ck-pickle-zip",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{ck_pickle}"),
        "ck_pickle",
        "refused|weights_only",
    ),
    _c(
        "ck-pickle-raw",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{ck_raw}"),
        "ck_raw",
        "refused|weights_only",
    ),
    _c(
        "ck-truncated",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{ck_trunc}"),
        "ck_trunc",
        "re-export or re-download",
    ),
    _c(
        "ck-random-bytes",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{ck_random}"),
        "ck_random",
        "re-export or re-download|safetensors",
    ),
    _c(
        "ck-folder",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{out_dir}"),
        "out",
        "not a file",
    ),
    _c(
        "ck-unknown-config",
        "checkpoint",
        R.replace("|--standin|red", "|--config|nano-xl"),
        "nano-xl",
        "valid names",
    ),
    _c(
        "ck-format-version",
        "checkpoint",
        R.replace("|--standin|red", "|--checkpoint|{ck_version}"),
        "'99'",
        "update the plugin",
    ),
    _c(
        "ck-and-config",
        "checkpoint",
        R + "|--config|nano",
        "--config|--standin",
        "not allowed|see --help",
    ),
    # devices
    _c(
        "device-cuda",
        "device",
        R.replace("|--standin|red", "|--config|test-tiny|--device|cuda"),
        "cuda",
        "cpu|auto",
    ),
    _c(
        "device-tpu",
        "device",
        R.replace("|--standin|red", "|--config|test-tiny|--device|tpu"),
        "tpu",
        "cpu|auto",
    ),
    _c(
        "device-mps",
        "device",
        R.replace("|--standin|red", "|--config|test-tiny|--device|mps"),
        "mps",
        "cpu|auto",
    ),
    _c("threads-0", "device", R + "|--threads|0", "--threads 0", ">= 1"),
    # arguments
    _c("threshold-0", "argument", R + "|--threshold|0", "threshold=0", r"\(0, 1\]"),
    _c("threshold-neg", "argument", R + "|--threshold|-0.5", "threshold=-0.5", r"\(0, 1\]"),
    _c("threshold-nan", "argument", R + "|--threshold|nan", "threshold=nan", r"\(0, 1\]"),
    _c("min-area-neg", "argument", R + "|--min-area|-5", "min_area_m2=-5", ">= 0"),
    _c("gsd-neg", "argument", R + "|--gsd|-1", "gsd_m=-1", "> 0"),
    _c("gsd-word", "argument", R + "|--gsd|fine", "fine", "metres per pixel"),
    _c("tile-tiny", "argument", R + "|--tile-px|8", "tile_px=8", ">= 32"),
    _c(
        "overlap-too-big",
        "argument",
        R + "|--tile-px|64|--overlap-px|64",
        "overlap_px=64",
        "smaller than",
    ),
    _c("batch-0", "argument", R + "|--batch-size|0", "batch_size=0", ">= 1"),
    _c("unknown-option", "argument", R + "|--colour|red", "--colour", "see --help"),
    _c(
        "missing-text",
        "argument",
        "segment|{raster}|--out|{out}|--standin|red",
        "--text",
        "see --help",
    ),
    _c("empty-text", "argument", R.replace("the red roof", " "), "text=' '", "describe what"),
    _c("simplify-neg", "argument", R + "|--simplify|-1", "simplify=-1", ">= 0"),
    # resource bombs: planned and refused before anything runs
    _c(
        "bomb-huge-raster",
        "resource",
        "segment|{huge}|--text|x|--out|{out}|--standin|red|--gsd|native",
        r"1,000,000 x 1,000,000|[\d,]+ tiles",
        "allow large runs|--allow-large",
    ),
    _c("bomb-fine-gsd", "resource", R + "|--gsd|0.0005", r"[\d,]+ tiles", "--allow-large|coarser"),
    _c(
        "bomb-tiny-tiles",
        "resource",
        "segment|{huge}|--text|x|--out|{out}|--standin|red|--gsd|native|--tile-px|32|--overlap-px|0",
        r"[\d,]+ tiles",
        "--allow-large",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}:{c.id}" for c in CASES])
def test_cli_case(case: Case, world: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    out = world.out_dir / f"{case.id}.gpkg"
    args = [a.format(**{**vars(world), "out": out}) for a in case.args]
    before = _snapshot(world.dir)
    code = main(args)
    stdout, err = capsys.readouterr()
    assert code == case.code, err
    assert "Traceback" not in err and "Traceback" not in stdout
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: "), line
    assert re.search(case.value, line), f"value {case.value!r} not named in: {line}"
    assert re.search(case.fix, line), f"fix {case.fix!r} not given in: {line}"
    assert _snapshot(world.dir) == before, "files were created or changed"
    assert not world.marker.exists(), "a checkpoint executed code"


def test_negative_coordinates_need_no_special_syntax(
    world: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    out = world.out_dir / "negative.gpkg"
    bbox = "-43.3,-22.90128,-43.29872,-22.9"  # the whole raster; every value negative
    code = main(
        [
            "segment",
            str(world.negative),
            "--text",
            "red",
            "--out",
            str(out),
            "--standin",
            "red",
            "--bbox",
            bbox,
            "--gsd",
            "native",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 0, err
    assert pyogrio.read_info(out)["features"] == 1
    out.unlink()


def test_allow_large_lets_a_planned_bomb_through_the_plan(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend import resources

    # the streaming buffers of this plan need ~11 GiB: as if the machine had 64 GiB free (the
    # memory check has its own tests; here only the tile limit is under test)
    monkeypatch.setattr(resources, "available_bytes", lambda device: 64 * 1024**3)
    with pytest.raises(ResourceError, match="tiles"):
        validate_inputs(world.huge, "x", gsd_m=None, segmenter=RedSegmenter(image_size=1024))
    plan = validate_inputs(
        world.huge, "x", gsd_m=None, segmenter=RedSegmenter(image_size=1024), allow_large=True
    )
    from backend.geo.tiling import tile_starts

    expected = len(tile_starts(1_000_000, tile_px=1024, overlap_px=128))
    assert plan.n_tiles > MAX_TILES and plan.tiles == (expected, expected) == (1116, 1116)


def test_a_slow_model_is_refused_by_its_estimated_time(world: SimpleNamespace) -> None:
    slow = SimpleNamespace(image_size=128, gsd_m=None, seconds_per_tile=1200.0)
    with pytest.raises(ResourceError, match=r"about \d+(\.\d)? h of model time"):
        validate_inputs(world.raster, "x", segmenter=slow, tile_px=32, overlap_px=0)


def _cli_process(args: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "backend", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


_SLOW_DRIVER = textwrap.dedent("""
    import signal, sys, time
    from backend import cli

    # a background job (nohup, CI) may start with SIGINT ignored; a terminal user's Ctrl-C is not
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from backend.standins import RedSegmenter

    class Slow(RedSegmenter):
        def predict(self, image, text):
            time.sleep(0.2)
            return super().predict(image, text)

    cli._load_segmenter = lambda args: Slow(image_size=64)
    cli._describe_segmenter = lambda args: Slow(image_size=64)
    print("started", flush=True)
    sys.exit(cli.main(sys.argv[1:]))
""")


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_signals_leave_no_output(
    world: SimpleNamespace, tmp_path: Path, sig: int, code: int, word: str
) -> None:
    out = tmp_path / "o.gpkg"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = ["segment", str(world.raster), "--text", "x", "--out", str(out), "--standin", "red"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_DRIVER, *argv, "--gsd", "native", "--quiet"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    time.sleep(1.0)  # 9 tiles of 64 px x 0.2 s: the run is in the middle
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and word in err and "no output written" in err
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writers_never_clobber(world: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "same.gpkg"
    args = [
        "segment",
        str(world.raster),
        "--text",
        "red",
        "--out",
        str(out),
        "--standin",
        "red",
        "--quiet",
    ]
    procs = [_cli_process(args) for _ in range(3)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2, 2], results
    assert all("already exists" in err for code, err in results if code == 2)
    assert pyogrio.read_info(out)["features"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.gpkg"]


def _tmpfs(folder: Path, size_kb: int) -> bool:
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def test_full_disk_is_reported_as_such(world: SimpleNamespace, tmp_path: Path) -> None:
    """A really full file system (tmpfs) where one can be mounted, else a file-size limit."""
    disk = tmp_path / "disk"
    mounted = _tmpfs(disk, 64)
    try:
        limit = ""
        if mounted:
            (disk / "fill").write_bytes(b"\0" * 40 * 1024)
        else:
            limit = (
                "import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))"
            )
        before = sorted(p.name for p in disk.iterdir())
        out = disk / "o.gpkg"
        code = (
            f"{limit}\nimport sys\nfrom backend.cli import main\n"
            f"sys.exit(main(['segment', {str(world.raster)!r}, '--text', 'red', '--out', "
            f"{str(out)!r}, '--standin', 'red', '--quiet']))"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "is full" in lines[0] and "o.gpkg" in lines[0] and "free some space" in lines[0]
        assert sorted(p.name for p in disk.iterdir()) == before
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)


def test_sqlite_words_for_a_full_disk_are_recognised() -> None:
    from backend.geo.writers import _is_disk_full

    assert _is_disk_full(RuntimeError("sqlite3_exec failed: database or disk is full"))
    assert _is_disk_full(OSError(28, "No space left on device"))
    assert not _is_disk_full(RuntimeError("no such table: gpkg_contents"))


# ----------------------------------------------------------------------------- API shapes
def test_api_bands_first_array_is_explained() -> None:
    from backend.model.segmenter import _check_image

    with pytest.raises(InputError, match=r"\(bands, H, W\).*np.moveaxis"):
        _check_image(np.zeros((3, 200, 300), np.uint8), batch=False)
    with pytest.raises(InputError, match="float16"):
        _check_image(np.zeros((200, 300, 3), np.float16), batch=False)


def test_api_segment_array_shapes_and_dtypes(world: SimpleNamespace) -> None:
    transform = (X0, 0.5, 0.0, Y0, 0.0, -0.5)
    with pytest.raises(InputError, match=r"\(bands, H, W\).*np.moveaxis"):
        segment_array(
            np.zeros((3, 100, 120), np.uint8), transform, "EPSG:32633", "x", RedSegmenter()
        )
    image = md.paint(md.background(96, 96), md.rect_mask(96, 96, 10, 10, 40, 50))
    half = np.moveaxis(image, 0, -1).astype(np.float16)
    result = segment_array(half, transform, "EPSG:32633", "x", RedSegmenter(), gsd_m=None)
    assert len(result) == 1 and abs(result.areas_m2[0] / (30 * 40 * 0.25) - 1) < 1e-2


def test_api_objects_without_predict_are_refused(world: SimpleNamespace) -> None:
    for bad in [object(), "nano", lambda image, text: image]:
        with pytest.raises(InputError, match=r"predict\(image, text\)"):
            segment_raster(world.raster, "x", segmenter=bad)


def test_api_nan_probabilities_are_refused(world: SimpleNamespace, tmp_path: Path) -> None:
    class NaNs(RedSegmenter):
        def predict(self, image: np.ndarray, text: str) -> np.ndarray:
            return np.full(image.shape[:2], np.nan, np.float32)

    out = tmp_path / "o.gpkg"
    with pytest.raises(InputError, match="non-finite"):
        segment_raster(world.raster, "x", segmenter=NaNs(image_size=64), out_path=out)
    assert not out.exists()


def test_output_case_variant_of_input_is_refused_on_case_insensitive_fs(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend import outputs
    from backend.errors import OutputError
    from backend.pipeline import plan

    monkeypatch.setattr(outputs, "_case_insensitive", lambda path: True)
    upper = world.gpkg_raster.with_name("ORTHO.GPKG")
    with pytest.raises(OutputError, match="destroy the input"):
        plan.check_not_an_input(upper, [str(world.gpkg_raster)])
    monkeypatch.setattr(outputs, "_case_insensitive", lambda path: False)
    plan.check_not_an_input(upper, [str(world.gpkg_raster)])  # a different file on Linux


def test_every_group_has_cases() -> None:
    groups = {c.group for c in CASES}
    assert groups >= {
        "raster",
        "crs",
        "bbox",
        "aoi",
        "output",
        "checkpoint",
        "device",
        "argument",
        "resource",
    }
    assert len(CASES) >= 60
