"""`make demo` in reduced form: one raster, one query; outputs land with the raster's CRS."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.demo import (
    DEMO_DIR,
    SPACENET,
    SPACENET_TRUTH,
    WATER_TRUTH,
    main,
    read_truth,
    truth_found,
    truth_iou,
)


@pytest.mark.parametrize("config", ["default", "test-tiny"])
def test_demo_reduced_writes_gpkg_png_and_table(tmp_path: Path, capsys, config: str) -> None:
    """`make demo` reduced to one query; "default" = the shipped weights, as `make demo` runs."""
    import pyogrio
    import rasterio
    from pyproj import CRS

    model_args = [] if config == "default" else ["--config", config]
    rc = main(
        [
            *model_args,
            "--out",
            str(tmp_path),
            "--raster",
            SPACENET,
            "--query",
            "the buildings",
            "--reduced",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "| the buildings |" in out and "IoU vs reference" in out
    gpkgs = list(tmp_path.glob("*.gpkg"))
    pngs = list(tmp_path.glob("*.png"))
    assert len(gpkgs) == 1 and len(pngs) == 1 and pngs[0].stat().st_size > 10_000
    info = pyogrio.read_info(gpkgs[0])
    with rasterio.open(DEMO_DIR / SPACENET) as ds:
        assert CRS.from_user_input(info["crs"]).equals(CRS.from_wkt(ds.crs.to_wkt()))
    assert {"prompt", "score", "area_m2", "model", "checkpoint_sha256"} <= set(info["fields"])
    if config == "default" and info["features"]:
        _, _, _, fields = pyogrio.raw.read(gpkgs[0], columns=["model", "checkpoint_sha256"])
        assert set(fields[0]) == {"nano"} and all(len(sha) == 64 for sha in fields[1])


def test_truth_iou_is_one_against_itself_and_zero_when_disjoint() -> None:
    from shapely.affinity import translate

    with __import__("rasterio").open(DEMO_DIR / SPACENET) as ds:
        truth = read_truth(DEMO_DIR / SPACENET_TRUTH, ds.crs.to_wkt())
    assert len(truth) == 3
    assert truth_iou(truth, truth) == pytest.approx(1.0)
    assert truth_iou([translate(g, 10_000, 0) for g in truth], truth) == 0.0
    assert truth_iou([], []) == 0.0
    assert truth_found(truth, truth) == pytest.approx(1.0)
    share = truth[0].area / sum(g.area for g in truth)
    assert truth_found([truth[0]], truth) == pytest.approx(share)
    assert truth_found([], truth) == 0.0


def test_water_reference_is_the_committed_file_and_covers_the_river() -> None:
    """tools/make_water_reference.py reproduces demo_data/test_tiled_water.gpkg, and the
    reference covers the river's dark water (a pixel in mid-channel) but not the roofs."""
    import importlib.util

    import numpy as np
    import rasterio
    import shapely
    from shapely.ops import unary_union

    spec = importlib.util.spec_from_file_location(
        "mwr", Path(__file__).resolve().parents[2] / "tools" / "make_water_reference.py")
    mwr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mwr)
    with rasterio.open(DEMO_DIR / "test_tiled.tif") as ds:
        mask = mwr.water_mask(ds.read())
        water = unary_union(read_truth(DEMO_DIR / WATER_TRUTH, ds.crs.to_wkt()))
        xy = ds.xy  # (row, col) -> pixel centre
        assert abs(water.area - mask.sum() * 0.25 * 0.25) / water.area < 0.01
        assert mask[700, 500] and water.contains(shapely.Point(*xy(700, 500)))  # river
        assert not mask[580, 250] and not water.contains(shapely.Point(*xy(580, 250)))  # roof
    assert 0.25 < float(np.mean(mask)) < 0.40


def test_demo_user_error_exits_2(tmp_path: Path, capsys) -> None:
    rc = main(["--checkpoint", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path)])
    assert rc == 2
    assert "missing.safetensors" in capsys.readouterr().err


def test_query_gsd_and_prompt_warnings_reach_the_table(tmp_path: Path, capsys) -> None:
    """A demo query with its own working GSD (vehicles at 0.25 m) is run and labelled at that
    GSD; how the lexicon rewrote a prompt for the bundled weights is listed under the table."""
    rc = main(["--out", str(tmp_path), "--raster", "test_tiled.tif", "--query", "vehicles",
               "--query", "the lake"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| vehicles | 0.25 m |" in out
    assert "| the lake | 1 m |" in out  # the model's own gsd_m
    assert "- 'the lake': the model was given 'the water' (lake \u2192 water" in out
