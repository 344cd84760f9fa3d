"""`python -m backend segment`: exit codes, one-line errors, no partial files, real model e2e."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyogrio
import pytest

from backend.cli import main
from backend.geo import writers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_data as md

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo_data" / "test_tiled.tif"  # a copy of the shared demo raster
X0, Y0 = md.UTM33_ORIGIN


@pytest.fixture
def raster(tmp_path):
    image = md.paint(md.background(128, 128), md.rect_mask(128, 128, 20, 30, 60, 90))
    return md.write_geotiff(tmp_path / "in.tif", image, transform=md.utm_transform())


def run(capsys, *args):
    code = main(["segment", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err, *needles):
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_success_writes_the_file_and_prints_one_summary_line(capsys, tmp_path, raster):
    out = tmp_path / "out.gpkg"
    code, stdout, err = run(capsys, raster, "--text", "red", "--out", out, "--standin", "red")
    assert code == 0, err
    assert stdout.strip().count("\n") == 0 and stdout.startswith("1 polygons")
    assert str(out) in stdout
    info = pyogrio.read_info(out)
    assert info["crs"] == "EPSG:32633" and info["features"] == 1


def test_bbox_and_bbox_crs_options(capsys, tmp_path, raster):
    out = tmp_path / "out.geojson"
    bbox = f"{X0},{Y0 - 20},{X0 + 20},{Y0}"  # the top-left 40 x 40 px only
    code, stdout, err = run(
        capsys,
        raster,
        "--text",
        "red",
        "--out",
        out,
        "--standin",
        "red",
        "--bbox",
        bbox,
        "--bbox-crs",
        "EPSG:32633",
    )
    assert code == 0, err
    _, _, geometry, _ = pyogrio.raw.read(out)
    import shapely

    assert shapely.from_wkb(geometry[0]).bounds == pytest.approx(
        (X0 + 15, Y0 - 20, X0 + 20, Y0 - 10)
    )


def test_missing_file(capsys, tmp_path):
    missing = tmp_path / "nope.tif"
    code, _, err = run(
        capsys, missing, "--text", "x", "--out", tmp_path / "o.gpkg", "--standin", "red"
    )
    assert_user_error(code, err, str(missing), "does not exist")
    assert os.listdir(tmp_path) == []


def test_not_a_raster(capsys, tmp_path):
    fake = tmp_path / "notes.tif"
    fake.write_text("hello")
    code, _, err = run(
        capsys, fake, "--text", "x", "--out", tmp_path / "o.gpkg", "--standin", "red"
    )
    assert_user_error(code, err, str(fake), "cannot read")
    assert os.listdir(tmp_path) == ["notes.tif"]


def test_raster_without_crs_and_assume_crs(capsys, tmp_path):
    image = md.paint(md.background(64, 64), md.rect_mask(64, 64, 5, 5, 20, 20))
    path = md.write_geotiff(tmp_path / "nocrs.tif", image, transform=md.utm_transform(), crs=None)
    out = tmp_path / "o.gpkg"
    code, _, err = run(capsys, path, "--text", "x", "--out", out, "--standin", "red")
    assert_user_error(code, err, "no CRS", "--assume-crs")
    assert not out.exists()
    code, _, err = run(
        capsys, path, "--text", "x", "--out", out, "--standin", "red", "--assume-crs", "EPSG:32633"
    )
    assert code == 0, err
    assert pyogrio.read_info(out)["crs"] == "EPSG:32633"


@pytest.mark.parametrize(
    ("bbox", "needles"),
    [
        ("10,0,5,1", ("min >= max",)),
        ("0,0,10,10", ("does not overlap", "give a bbox inside")),
        ("1,2,3", ("--bbox", "4 numbers")),
    ],
)
def test_bad_bbox(capsys, tmp_path, raster, bbox, needles):
    out = tmp_path / "o.gpkg"
    code, _, err = run(
        capsys, raster, "--text", "x", "--out", out, "--standin", "red", "--bbox", bbox
    )
    assert_user_error(code, err, *needles)
    assert not out.exists()


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text(capsys, tmp_path, raster, text):
    code, _, err = run(
        capsys, raster, "--text", text, "--out", tmp_path / "o.gpkg", "--standin", "red"
    )
    assert_user_error(code, err, "empty")
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]


def test_output_folder_missing(capsys, tmp_path, raster):
    out = tmp_path / "no" / "such" / "o.gpkg"
    code, _, err = run(capsys, raster, "--text", "x", "--out", out, "--standin", "red")
    assert_user_error(code, err, str(out.parent), "does not exist")
    assert not (tmp_path / "no").exists()


def test_output_folder_not_writable(capsys, tmp_path, raster, monkeypatch):
    # we run as root, where chmod does not stop writes: (1) a "folder" that is really a file
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code, _, err = run(
        capsys, raster, "--text", "x", "--out", blocker / "o.gpkg", "--standin", "red"
    )
    assert_user_error(code, err, "not a folder")
    # (2) what os.access reports for a read-only folder
    monkeypatch.setattr(writers.os, "access", lambda path, mode: False)
    code, _, err = run(
        capsys, raster, "--text", "x", "--out", tmp_path / "o.gpkg", "--standin", "red"
    )
    assert_user_error(code, err, "not writable")
    assert sorted(os.listdir(tmp_path)) == ["blocker", "in.tif"]


def test_output_exists_unless_overwrite(capsys, tmp_path, raster):
    out = tmp_path / "o.gpkg"
    out.write_bytes(b"old")
    code, _, err = run(capsys, raster, "--text", "x", "--out", out, "--standin", "red")
    assert_user_error(code, err, str(out), "--overwrite")
    assert out.read_bytes() == b"old"
    code, _, err = run(
        capsys, raster, "--text", "x", "--out", out, "--standin", "red", "--overwrite"
    )
    assert code == 0, err
    assert pyogrio.read_info(out)["features"] == 1
    assert sorted(os.listdir(tmp_path)) == ["in.tif", "o.gpkg"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--bands", "1,x"], "--bands"),
        (["--bands", "1,9,2"], "band 9 does not exist"),
        (["--gsd", "fast"], "--gsd"),
        (["--gsd", "-1"], "gsd_m"),
        (["--threshold", "1.5"], "threshold"),
        (["--out", "o.shp"], "unsupported extension"),
    ],
)
def test_other_bad_values(capsys, tmp_path, raster, extra, needle):
    args = [raster, "--text", "x", "--out", tmp_path / "o.gpkg", "--standin", "red", *extra]
    code, _, err = run(capsys, *args)
    assert_user_error(code, err, needle)
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]


def test_unknown_model_config(capsys, tmp_path, raster):
    code, _, err = run(
        capsys, raster, "--text", "x", "--out", tmp_path / "o.gpkg", "--config", "nope"
    )
    assert_user_error(code, err, "nope")


def _python_m_backend(*args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PROJ_LIB", "PROJ_DATA")}
    env.update(HF_HUB_OFFLINE="1", QT_QPA_PLATFORM="offscreen", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, "-m", "backend", "segment", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_python_m_backend_user_error_is_one_line_in_a_real_process(tmp_path):
    proc = _python_m_backend(tmp_path / "nope.tif", "--text", "x", "--out", tmp_path / "o.gpkg")
    assert proc.returncode == 2
    assert_user_error(proc.returncode, proc.stderr, "does not exist")
    assert proc.stdout == ""


@pytest.mark.skipif(not DEMO.exists(), reason=f"{DEMO} not present")
def test_real_model_end_to_end_on_a_real_geotiff(tmp_path):
    """test-tiny (random init) through the CLI; 1 m working GSD keeps it to a few tiles."""
    import rasterio

    out = tmp_path / "river.gpkg"
    proc = _python_m_backend(
        DEMO,
        "--text",
        "the river",
        "--out",
        out,
        "--config",
        "test-tiny",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--gsd",
        "1.0",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "polygons" in proc.stdout and "test-tiny" in proc.stdout
    info = pyogrio.read_info(out)
    with rasterio.open(DEMO) as src:
        raster_epsg = src.crs.to_epsg()
    assert info["crs"] == f"EPSG:{raster_epsg}" == "EPSG:28992"
    assert {"prompt", "score", "area_m2", "model", "checkpoint_sha256"} <= set(info["fields"])
    if info["features"]:
        _, _, _, fields = pyogrio.raw.read(out)
        names = list(info["fields"])
        assert set(fields[names.index("model")]) == {"test-tiny"}
        assert all(0 <= s <= 1 for s in fields[names.index("score")])
    assert sorted(os.listdir(tmp_path)) == ["river.gpkg"]


def test_aoi_as_wkt_and_as_vector_file(capsys, tmp_path, raster):
    import shapely
    from shapely.geometry import box

    # red rect is rows 20-59, cols 30-89 (0.5 m pixels); keep only columns < 50
    aoi = box(X0, Y0 - 64, X0 + 25, Y0)
    out = tmp_path / "wkt.gpkg"
    code, _, err = run(
        capsys, raster, "--text", "red", "--out", out, "--standin", "red", "--aoi", aoi.wkt
    )
    assert code == 0, err
    _, _, geometry, _ = pyogrio.raw.read(out)
    (got,) = shapely.from_wkb(geometry)
    assert got.bounds == pytest.approx((X0 + 15, Y0 - 30, X0 + 25, Y0 - 10))
    vector = tmp_path / "aoi.gpkg"
    writers.write_polygons(vector, [aoi], [{"id": 1}], crs_wkt="EPSG:32633", schema=[("id", int)])
    out2 = tmp_path / "file.gpkg"
    code, _, err = run(
        capsys, raster, "--text", "red", "--out", out2, "--standin", "red", "--aoi", vector
    )
    assert code == 0, err
    _, _, geometry2, _ = pyogrio.raw.read(out2)
    assert shapely.from_wkb(geometry2)[0].equals(got)


def test_bad_aoi_is_a_user_error(capsys, tmp_path, raster):
    out = tmp_path / "o.gpkg"
    code, _, err = run(
        capsys, raster, "--text", "x", "--out", out, "--standin", "red", "--aoi", "not a polygon"
    )
    assert_user_error(code, err, "--aoi", "not a polygon")
    assert not out.exists()


@pytest.mark.skipif(not DEMO.exists(), reason=f"{DEMO} not present")
def test_the_bundled_model_gets_its_own_words_and_the_cli_says_so(tmp_path):
    """The bundled weights keep only the token rows of their training captions: 'lake' is not
    among them, so the lexicon gives the model 'water' and the CLI says so on stderr (exit 0,
    file written, ``prompt_used`` in the file); a word the lexicon does not know either is
    warned about."""
    out = tmp_path / "lake.gpkg"
    proc = _python_m_backend(DEMO, "--text", "the lake", "--out", out, "--device", "cpu",
                             "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "the model was given 'the water' (lake \u2192 water" in proc.stderr
    assert "never saw" not in proc.stderr
    info = pyogrio.read_info(out)
    assert "prompt_used" in info["fields"]
    if info["features"]:
        _, _, _, fields = pyogrio.raw.read(out)
        names = list(info["fields"])
        assert set(fields[names.index("prompt")]) == {"the lake"}
        assert set(fields[names.index("prompt_used")]) == {"the water"}
    proc = _python_m_backend(DEMO, "--text", "water by the shore", "--out", tmp_path / "w.gpkg",
                             "--device", "cpu", "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "never saw 'by', 'shore' in training" in proc.stderr
    assert "the model was given" not in proc.stderr


@pytest.mark.skipif(not DEMO.exists(), reason=f"{DEMO} not present")
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("\u6c34\u57df", "reads English only"),  # "water area" in Chinese
        ("\u0432\u043e\u0434\u0430", "reads English only"),  # "water" in Russian
        ("\U0001f3e0 \U0001f30a", "has no words"),  # house + wave emoji
        ("?!... --", "has no words"),
        ("blorf zzyzx", "knows none of its words"),
    ],
)
def test_text_the_bundled_model_cannot_use_is_a_user_error(capsys, tmp_path, text, needle):
    out = tmp_path / "o.gpkg"
    code, _, err = run(capsys, DEMO, "--text", text, "--out", out, "--device", "cpu")
    assert_user_error(code, err, needle, repr(text))
    if "has no words" not in needle:
        assert "It was trained to find: airplanes, ships" in err and "bare land" in err
    assert sorted(os.listdir(tmp_path)) == []


def test_text_without_words_fails_before_any_model_loads(capsys, tmp_path, raster):
    """Punctuation or emoji only is refused for every segmenter, even a stand-in without a
    vocabulary (which otherwise gets any text unchanged)."""
    out = tmp_path / "o.gpkg"
    code, _, err = run(capsys, raster, "--text", "\U0001f697!", "--out", out, "--standin", "red")
    assert_user_error(code, err, "has no words")
    assert not out.exists()
    code, _, err = run(capsys, raster, "--text", "\u7ea2\u8272", "--out", out, "--standin", "red")
    assert code == 0, err  # no vocabulary: passes through unchanged
