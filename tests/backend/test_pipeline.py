"""segment_raster / segment_array end to end with stand-in segmenters on synthetic GeoTIFFs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from shapely.geometry import Polygon, box

from backend.errors import Cancelled, InputError, OutputError, UnsupportedRasterError
from backend.pipeline import FIELDS, segment_array, segment_raster
from backend.standins import ConstantSegmenter, RedSegmenter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_data as md

RES = 0.5
X0, Y0 = md.UTM33_ORIGIN


def utm_box(row0: int, col0: int, row1: int, col1: int, res: float = RES) -> Polygon:
    """The map rectangle of pixel rows [row0, row1) x cols [col0, col1) of utm_transform(res)."""
    return box(X0 + col0 * res, Y0 - row1 * res, X0 + col1 * res, Y0 - row0 * res)


def square_raster(path: Path, h: int = 256, w: int = 256, rect=(40, 60, 100, 140), **kw) -> Path:
    image = md.paint(md.background(h, w), md.rect_mask(h, w, *rect))
    return md.write_geotiff(path, image, transform=kw.pop("transform", md.utm_transform()), **kw)


def iou(a, b) -> float:
    return a.intersection(b).area / a.union(b).area


def assert_bounds_close(geometry, expected, tol: float) -> None:
    assert np.allclose(geometry.bounds, expected.bounds, atol=tol), (
        geometry.bounds,
        expected.bounds,
    )


# --- geometry ---------------------------------------------------------------------------------


def test_red_square_utm_is_one_polygon_on_the_pixel_edges(tmp_path):
    path = square_raster(tmp_path / "sq.tif")
    result = segment_raster(path, "the red roof", RedSegmenter(image_size=128))
    assert len(result) == 1
    expected = utm_box(40, 60, 100, 140)
    assert_bounds_close(result.polygons[0], expected, tol=RES / 2)
    assert result.polygons[0].symmetric_difference(expected).area < 1e-6
    attrs = result.attributes[0]
    assert attrs["score"] == pytest.approx(1.0)
    assert attrs["pixels"] == 60 * 80
    # true ground area: planar UTM area divided by the squared point scale factor (~0.9996)
    planar = 60 * 80 * RES * RES
    assert attrs["area_m2"] == pytest.approx(planar / 0.9996**2, rel=2e-4)
    assert set(attrs) == {name for name, _ in FIELDS}
    assert attrs["prompt"] == "the red roof" and attrs["model"] == "standin-red"
    assert attrs["source"] == "sq.tif" and attrs["checkpoint_sha256"] == ""
    assert CRS.from_wkt(result.crs).to_epsg() == 32633


def test_red_square_in_epsg4326_with_true_area(tmp_path):
    res = 1e-5
    path = square_raster(
        tmp_path / "geo.tif", transform=from_origin(15.0, 60.0, res, res), crs="EPSG:4326"
    )
    result = segment_raster(path, "red", RedSegmenter(image_size=128))
    assert len(result) == 1
    expected = box(15.0 + 60 * res, 60.0 - 100 * res, 15.0 + 140 * res, 60.0 - 40 * res)
    assert_bounds_close(result.polygons[0], expected, tol=res / 2)
    # independent check of the geodesic area: planar area in an equal-area projection
    laea = CRS.from_proj4("+proj=laea +lat_0=60 +lon_0=15 +ellps=WGS84")
    to_laea = Transformer.from_crs("EPSG:4326", laea, always_xy=True)
    dense = shapely.segmentize(expected, res / 10)
    projected = shapely.transform(dense, lambda xy: np.column_stack(to_laea.transform(*xy.T)))
    assert result.areas_m2[0] == pytest.approx(projected.area, rel=1e-4)
    # and far from the meaningless planar "square degrees" value
    assert result.areas_m2[0] > 1e6 * result.polygons[0].area


def test_bbox_in_a_third_crs(tmp_path):
    path = square_raster(tmp_path / "sq.tif")
    # a bbox around the square (plus margin) given in EPSG:3857
    around = utm_box(30, 50, 110, 150)
    to_3857 = Transformer.from_crs("EPSG:32633", "EPSG:3857", always_xy=True)
    xs, ys = to_3857.transform(*np.array(around.exterior.coords).T)
    bbox = (min(xs), min(ys), max(xs), max(ys))
    result = segment_raster(
        path, "red", RedSegmenter(image_size=64), bbox=bbox, bbox_crs="EPSG:3857"
    )
    assert len(result) == 1
    assert result.polygons[0].symmetric_difference(utm_box(40, 60, 100, 140)).area < 1e-6
    row_off, col_off, height, width = result.window
    assert height < 256 and width < 256  # only the bbox was processed
    assert row_off <= 40 and col_off <= 60 and row_off + height >= 100 and col_off + width >= 140


def test_object_crossing_tile_boundaries_is_one_polygon(tmp_path):
    path = square_raster(tmp_path / "big.tif", h=300, w=300, rect=(20, 30, 250, 270))
    result = segment_raster(path, "red", RedSegmenter(), tile_px=64, overlap_px=16)
    assert result.n_tiles > 9
    assert len(result) == 1
    assert result.polygons[0].symmetric_difference(utm_box(20, 30, 250, 270)).area < 1e-6
    assert result.attributes[0]["pixels"] == 230 * 240


def test_ring_keeps_its_hole_across_tiles_and_strips(tmp_path):
    h = w = 200
    ring = md.ring_mask(h, w, (20, 20, 180, 180), (60, 70, 140, 150))
    image = md.paint(md.background(h, w), ring)
    path = md.write_geotiff(tmp_path / "ring.tif", image, transform=md.utm_transform())
    result = segment_raster(path, "red", RedSegmenter(), tile_px=64, overlap_px=8, strip_rows=16)
    assert len(result) == 1
    polygon = result.polygons[0]
    assert len(polygon.interiors) == 1
    hole = Polygon(polygon.interiors[0])
    assert hole.symmetric_difference(utm_box(60, 70, 140, 150)).area < 1e-6
    assert result.attributes[0]["pixels"] == int(ring.sum())


def test_streaming_strips_object_spanning_many_strips(tmp_path):
    """An object taller than many strips and tile rows: one polygon, exact area and score."""
    h, w = 400, 120
    blob = md.disc_mask(h, w, 200, 60, 55) | md.rect_mask(h, w, 10, 50, 390, 70)
    image = md.paint(md.background(h, w), blob)
    path = md.write_geotiff(tmp_path / "tall.tif", image, transform=md.utm_transform())
    seg = RedSegmenter()
    results = [
        segment_raster(path, "red", seg, tile_px=64, overlap_px=8, strip_rows=rows)
        for rows in (7, 32, 1000)
    ]
    for result in results:
        assert len(result) == 1
        assert result.attributes[0]["pixels"] == int(blob.sum())
        assert result.polygons[0].area == pytest.approx(blob.sum() * RES * RES)
        assert result.attributes[0]["score"] == pytest.approx(1.0)
    # strip size is a memory knob only: identical geometry
    assert results[0].polygons[0].symmetric_difference(results[2].polygons[0]).area < 1e-9


def test_blending_is_normalised_where_pulled_back_tiles_overlap(tmp_path):
    """100 px, 64 px tiles, 32 px overlap: starts 0, 32, 36; three tiles overlap in [36, 64)."""
    path = square_raster(tmp_path / "c.tif", h=100, w=100, rect=(0, 0, 1, 1))
    result = segment_raster(path, "x", ConstantSegmenter(0.7), tile_px=64, overlap_px=32)
    assert result.n_tiles == 9 and len(result) == 1
    assert result.attributes[0]["pixels"] == 100 * 100
    assert result.attributes[0]["score"] == pytest.approx(0.7, abs=1e-5)


def test_separate_objects_stay_separate_and_corner_touch_is_not_a_join(tmp_path):
    h = w = 128
    mask = md.rect_mask(h, w, 10, 10, 40, 40) | md.rect_mask(h, w, 40, 40, 70, 70)
    mask |= md.rect_mask(h, w, 90, 10, 120, 120)
    image = md.paint(md.background(h, w), mask)
    path = md.write_geotiff(tmp_path / "three.tif", image, transform=md.utm_transform())
    result = segment_raster(path, "red", RedSegmenter(), tile_px=64, overlap_px=8, strip_rows=40)
    assert sorted(a["pixels"] for a in result.attributes) == [900, 900, 30 * 110]


def test_rotated_geotransform_is_handled(tmp_path):
    transform = Affine.translation(X0, Y0) @ Affine.rotation(30) @ Affine.scale(RES, -RES)
    path = square_raster(tmp_path / "rot.tif", transform=transform)
    result = segment_raster(path, "red", RedSegmenter(image_size=128))
    assert len(result) == 1
    pixel_square = box(60, 40, 140, 100)  # (col, row) space
    matrix = [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
    expected = shapely.affinity.affine_transform(pixel_square, matrix)
    assert shapely.hausdorff_distance(result.polygons[0], expected) < RES / 2
    assert result.polygons[0].symmetric_difference(expected).area < 1e-6
    assert result.native_gsd_m == pytest.approx((RES / 0.9996, RES / 0.9996), rel=1e-4)


def test_sheared_geotransform_and_bbox(tmp_path):
    transform = Affine(RES, 0.2, X0, 0.1, -RES, Y0)
    path = square_raster(tmp_path / "shear.tif", transform=transform)
    corners = [transform @ (c, r) for c in (50, 150) for r in (30, 110)]
    xs, ys = zip(*corners, strict=False)
    result = segment_raster(
        path, "red", RedSegmenter(image_size=64), bbox=(min(xs), min(ys), max(xs), max(ys))
    )
    matrix = [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
    expected = shapely.affinity.affine_transform(box(60, 40, 140, 100), matrix)
    assert len(result) == 1
    assert result.polygons[0].symmetric_difference(expected).area < 1e-6


# --- scale rule -------------------------------------------------------------------------------


def test_same_object_two_bbox_sizes_with_gsd_resampling(tmp_path):
    h = w = 600
    truth_mask = md.disc_mask(h, w, 300, 310, 60)
    image = md.paint(md.background(h, w), truth_mask)
    path = md.write_geotiff(tmp_path / "disc.tif", image, transform=md.utm_transform(0.2))
    seg = RedSegmenter(image_size=64, gsd_m=0.5)  # 2.5 raster px per working px
    small = (X0 + 200 * 0.2, Y0 - 400 * 0.2, X0 + 420 * 0.2, Y0 - 200 * 0.2)
    large = (X0 + 20 * 0.2, Y0 - 590 * 0.2, X0 + 590 * 0.2, Y0 - 10 * 0.2)
    r_small = segment_raster(path, "red", seg, bbox=small, overlap_px=8)
    r_large = segment_raster(path, "red", seg, bbox=large, overlap_px=8)
    for result in (r_small, r_large):
        assert result.gsd_m == 0.5 and len(result) == 1
        assert result.pixel_counts["working"] < result.pixel_counts["window"]  # really resampled
    assert r_large.n_tiles > r_small.n_tiles
    assert iou(r_small.polygons[0], r_large.polygons[0]) >= 0.9
    # and both match the true disc (its pixel union) closely despite the 2.5x resampling
    truth = shapely.union_all(
        [utm_box(r, c, r + 1, c + 1, 0.2) for r, c in zip(*np.nonzero(truth_mask), strict=False)]
    )
    assert iou(r_small.polygons[0], truth) >= 0.95
    assert iou(r_large.polygons[0], truth) >= 0.95


def test_upsampling_working_grid(tmp_path):
    path = square_raster(tmp_path / "sq.tif", h=96, w=96, rect=(20, 30, 60, 70))
    result = segment_raster(path, "red", RedSegmenter(), gsd_m=0.25, tile_px=64, overlap_px=8)
    assert result.pixel_counts["working"] == 4 * 96 * 96
    assert len(result) == 1
    assert iou(result.polygons[0], utm_box(20, 30, 60, 70)) > 0.97


def test_raster_smaller_than_a_tile_is_padded(tmp_path):
    path = square_raster(tmp_path / "tiny.tif", h=40, w=50, rect=(5, 5, 20, 30))
    seg = RedSegmenter(image_size=128)
    result = segment_raster(path, "red", seg)
    assert result.n_tiles == 1 and seg.calls == 1
    assert result.polygons[0].symmetric_difference(utm_box(5, 5, 20, 30)).area < 1e-6


# --- radiometry, bands, nodata ----------------------------------------------------------------


def test_nodata_is_never_polygonised(tmp_path):
    h = w = 128
    data = md.to_uint16(md.background(h, w))
    data[:, 30:60, :] = 0  # a nodata band across the raster
    path = md.write_geotiff(tmp_path / "nd.tif", data, transform=md.utm_transform(), nodata=0)
    result = segment_raster(path, "all", ConstantSegmenter(1.0), tile_px=64, overlap_px=8)
    assert len(result) == 2  # the valid parts above and below the nodata band
    total = sum(a["pixels"] for a in result.attributes)
    assert total == h * w - 30 * w
    nodata_area = utm_box(30, 0, 60, w)
    assert all(p.intersection(nodata_area).area == 0 for p in result.polygons)
    assert result.pixel_counts["valid"] == h * w - 30 * w


def test_alpha_band_marks_nodata_and_is_not_used_as_a_colour(tmp_path):
    h = w = 96
    rgb = md.paint(md.background(h, w), md.rect_mask(h, w, 10, 10, 80, 80))
    alpha = np.full((1, h, w), 255, dtype=np.uint8)
    alpha[0, :, 50:] = 0  # right half transparent (red pixels there must not count)
    path = md.write_geotiff(
        tmp_path / "rgba.tif",
        np.concatenate([rgb, alpha]),
        transform=md.utm_transform(),
        colorinterp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha],
    )
    result = segment_raster(path, "red", RedSegmenter(image_size=64), overlap_px=8)
    assert len(result) == 1
    assert result.polygons[0].symmetric_difference(utm_box(10, 10, 80, 50)).area < 1e-6


def test_uint16_four_band_input(tmp_path):
    h = w = 160
    image = md.paint(md.background(h, w), md.rect_mask(h, w, 30, 40, 90, 120))
    nir = md.background(h, w, seed=9)[:1]
    data = md.to_uint16(np.concatenate([image, nir]))
    data[:, 140:, :] = 0
    path = md.write_geotiff(tmp_path / "ms.tif", data, transform=md.utm_transform(), nodata=0)
    result = segment_raster(path, "red", RedSegmenter(image_size=64), overlap_px=8)
    assert len(result) == 1
    assert result.polygons[0].symmetric_difference(utm_box(30, 40, 90, 120)).area < 1e-6
    # bands are honoured: with (3, 2, 1) the square is blue-ish, not red
    swapped = segment_raster(path, "red", RedSegmenter(image_size=64), bands=(3, 2, 1))
    assert len(swapped) == 0


def test_float32_reflectance_with_nan_nodata(tmp_path):
    """Float input (reflectance 0-1) is stretched like uint16; NaN nodata is never polygonised."""
    h = w = 160
    image = md.paint(md.background(h, w), md.rect_mask(h, w, 30, 40, 90, 120))
    data = image.astype(np.float32) / 1000.0  # 0.03-0.22, far from the uint8 range
    data[:, 120:, :] = np.nan
    path = md.write_geotiff(
        tmp_path / "refl.tif", data, transform=md.utm_transform(), nodata=float("nan")
    )
    result = segment_raster(path, "red", RedSegmenter(image_size=64), overlap_px=8)
    assert len(result) == 1
    assert result.polygons[0].symmetric_difference(utm_box(30, 40, 90, 120)).area < 1e-6
    everything = segment_raster(path, "all", ConstantSegmenter(1.0), tile_px=64, overlap_px=8)
    assert len(everything) == 1
    assert everything.polygons[0].symmetric_difference(utm_box(0, 0, 120, w)).area < 1e-6
    assert everything.pixel_counts["valid"] == 120 * w


def test_stretch_comes_from_the_whole_raster_not_the_extent(tmp_path):
    """The model input of a pixel must not depend on the bbox (zoom-stable radiometry)."""
    h = w = 200
    image = md.background(h, w)
    image[:, :, :100] //= 4  # a dark half: a stretch from the extent alone would differ
    data = md.to_uint16(image)
    path = md.write_geotiff(tmp_path / "st.tif", data, transform=md.utm_transform())

    class Capture(RedSegmenter):
        images: list

        def predict(self, image, text):
            self.images.append(image.copy())
            return super().predict(image, text)

    seg = Capture(image_size=64)
    seg.images = []
    bbox = utm_box(110, 110, 174, 174).bounds  # exactly one 64 px tile at (110, 110)
    segment_raster(path, "red", seg, bbox=bbox, tile_px=64, overlap_px=0)
    assert len(seg.images) == 1

    def stretched(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
        out = []
        for band, ref in zip(values, reference, strict=False):
            lo, hi = np.percentile(ref, (2, 98))
            out.append(np.clip(np.rint((band - lo) * 255.0 / (hi - lo)), 0, 255))
        return np.stack(out, axis=-1).astype(np.uint8)

    tile = data[:3, 110:174, 110:174].astype(np.float64)
    whole = stretched(tile, data[:3].astype(np.float64))
    local = stretched(tile, tile)
    assert np.abs(seg.images[0].astype(int) - whole.astype(int)).max() <= 1
    assert np.abs(local.astype(int) - whole.astype(int)).max() > 20  # the test can tell


# --- outputs, progress, cancel ------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson"])
def test_written_file_has_polygons_fields_and_crs(tmp_path, suffix):
    path = square_raster(tmp_path / "sq.tif")
    out = tmp_path / f"out{suffix}"
    result = segment_raster(path, "red", RedSegmenter(image_size=128), out_path=out)
    assert result.out_path == out
    info = pyogrio.read_info(out)
    assert info["crs"] == "EPSG:32633"
    assert info["features"] == 1
    assert {name for name, _ in FIELDS} <= set(info["fields"])
    _, _, geometry, fields = pyogrio.raw.read(out)
    written = shapely.from_wkb(geometry[0])
    assert written.symmetric_difference(utm_box(40, 60, 100, 140)).area < 1e-6
    names = list(info["fields"])
    assert fields[names.index("prompt")][0] == "red"
    assert fields[names.index("score")][0] == pytest.approx(1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["sq.tif", out.name])


def test_existing_output_is_refused_before_any_work(tmp_path):
    path = square_raster(tmp_path / "sq.tif")
    out = tmp_path / "out.gpkg"
    out.write_bytes(b"precious")
    seg = RedSegmenter(image_size=128)
    with pytest.raises(OutputError, match="already exists"):
        segment_raster(path, "red", seg, out_path=out)
    assert seg.calls == 0
    assert out.read_bytes() == b"precious"
    result = segment_raster(path, "red", seg, out_path=out, overwrite=True)
    assert result.out_path == out and pyogrio.read_info(out)["features"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gpkg", "sq.tif"]


def test_cancel_leaves_nothing_behind(tmp_path):
    path = square_raster(tmp_path / "sq.tif")
    out = tmp_path / "out.gpkg"
    seg = RedSegmenter()
    with pytest.raises(Cancelled):
        segment_raster(
            path,
            "red",
            seg,
            out_path=out,
            tile_px=64,
            overlap_px=8,
            is_cancelled=lambda: seg.calls >= 2,
        )
    assert seg.calls == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sq.tif"]


def test_progress_is_monotonic_and_reaches_100(tmp_path):
    path = square_raster(tmp_path / "sq.tif")
    seen: list[float] = []
    result = segment_raster(
        path, "red", RedSegmenter(), tile_px=64, overlap_px=8, progress=seen.append
    )
    assert len(seen) == result.n_tiles + 1
    assert seen == sorted(seen) and seen[-1] == 100.0 and 0 < seen[0] < 100


def test_min_area_and_simplify(tmp_path):
    h = w = 128
    mask = md.rect_mask(h, w, 10, 10, 14, 14) | md.disc_mask(h, w, 70, 70, 30)
    image = md.paint(md.background(h, w), mask)
    path = md.write_geotiff(tmp_path / "two.tif", image, transform=md.utm_transform())
    seg = RedSegmenter(image_size=128)
    both = segment_raster(path, "red", seg)
    assert len(both) == 2
    big = segment_raster(path, "red", seg, min_area_m2=10.0)  # the 4x4 px speck is 4 m2
    assert len(big) == 1 and big.areas_m2[0] > 500
    simple = segment_raster(path, "red", seg, min_area_m2=10.0, simplify=1.0)
    n_exact = len(big.polygons[0].exterior.coords)
    assert len(simple.polygons[0].exterior.coords) < n_exact / 2
    assert iou(simple.polygons[0], big.polygons[0]) > 0.97


# --- entry points, batching, errors -------------------------------------------------------------


def test_segment_array_matches_the_file_path(tmp_path):
    h = w = 120
    image = md.paint(md.background(h, w), md.rect_mask(h, w, 20, 30, 70, 90))
    valid = np.ones((h, w), dtype=bool)
    valid[:, 80:] = False
    transform = md.utm_transform()
    result = segment_array(
        image.transpose(1, 2, 0),
        transform.to_gdal(),  # the plugin hands over a GDAL geotransform
        CRS.from_epsg(32633).to_wkt(),
        "red",
        RedSegmenter(image_size=64),
        valid_mask=valid,
        overlap_px=8,
        out_path=tmp_path / "mem.gpkg",
    )
    assert len(result) == 1
    assert result.polygons[0].symmetric_difference(utm_box(20, 30, 70, 80)).area < 1e-6
    assert result.attributes[0]["source"] == "memory"
    assert pyogrio.read_info(tmp_path / "mem.gpkg")["crs"] == "EPSG:32633"


def test_predict_batch_gives_the_same_polygons(tmp_path):
    path = square_raster(tmp_path / "sq.tif", rect=(10, 10, 200, 230))

    class Batched(RedSegmenter):
        batches = 0

        def predict_batch(self, images, text):
            self.batches += 1
            return super().predict_batch(images, text)

    seg = Batched()
    one = segment_raster(path, "red", RedSegmenter(), tile_px=64, overlap_px=8)
    many = segment_raster(path, "red", seg, tile_px=64, overlap_px=8, batch_size=3)
    assert seg.batches >= 2
    assert one.polygons[0].equals(many.polygons[0])


def test_raster_without_crs_needs_assume_crs(tmp_path):
    path = square_raster(tmp_path / "nocrs.tif", crs=None)
    with pytest.raises(UnsupportedRasterError, match="has no CRS"):
        segment_raster(path, "red", RedSegmenter(image_size=128))
    result = segment_raster(path, "red", RedSegmenter(image_size=128), assume_crs="EPSG:32633")
    assert result.polygons[0].symmetric_difference(utm_box(40, 60, 100, 140)).area < 1e-6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bbox": (10, 0, 5, 1)}, "min >= max"),
        ({"bbox": (0, 0, 10, 10)}, "does not overlap"),
        ({"threshold": 0.0}, "threshold"),
        ({"bands": (1, 5, 2)}, "band 5 does not exist"),
        ({"bbox_crs": "EPSG:999999", "bbox": (0, 0, 1, 1)}, "not a CRS"),
    ],
)
def test_bad_arguments_raise_input_errors(tmp_path, kwargs, match):
    path = square_raster(tmp_path / "sq.tif", h=64, w=64, rect=(1, 1, 5, 5))
    with pytest.raises(InputError, match=match):
        segment_raster(path, "red", RedSegmenter(), **kwargs)


def test_empty_text_is_an_input_error(tmp_path):
    path = square_raster(tmp_path / "sq.tif", h=64, w=64, rect=(1, 1, 5, 5))
    with pytest.raises(InputError, match="empty"):
        segment_raster(path, "   ", RedSegmenter())


def test_wrong_probability_shape_is_reported(tmp_path):
    path = square_raster(tmp_path / "sq.tif", h=64, w=64, rect=(1, 1, 5, 5))

    class Bad(RedSegmenter):
        def predict(self, image, text):
            return np.zeros((10, 10), dtype=np.float32)

    with pytest.raises(InputError, match="shape"):
        segment_raster(path, "red", Bad(image_size=64))


def test_pipeline_module_imports_no_rasterio_or_torch():
    import subprocess

    code = (
        "import sys, backend.pipeline, backend.standins\n"
        "print(sorted(m for m in ('torch', 'rasterio') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(("size", "tile", "overlap"), [(200, 64, 8), (100, 64, 32), (40, 64, 8)])
def test_accumulate_equals_the_weighted_sum(size, tile, overlap):
    from backend.geo.tiling import axis_blend
    from backend.pipeline import _accumulate

    blend = axis_blend(size, tile_px=tile, overlap_px=overlap)
    rng = np.random.default_rng(0)
    scratch = np.empty((tile, tile), dtype=np.float32)
    for i in range(len(blend.starts)):
        for j in range(len(blend.starts)):
            rw, cw = blend.weights[i], blend.weights[j]
            prob = rng.random((rw.size, cw.size), dtype=np.float32)
            acc = np.zeros_like(prob)
            _accumulate(acc, prob, (rw, blend.keys[i]), (cw, blend.keys[j]), scratch)
            assert np.allclose(acc, prob * rw[:, None] * cw[None, :], atol=1e-7)


def test_words_the_model_never_saw_are_warned_about(tmp_path, caplog):
    """A segmenter's ``unknown_words`` become one warning on the result (and in the log); the
    polygons are unchanged; segmenters without it (stand-ins) give no warning."""

    class Vocabulary(RedSegmenter):
        def unknown_words(self, text: str) -> list[str]:
            return [w for w in text.split() if w in ("lake", "shore")]

    path = square_raster(tmp_path / "sq.tif")
    with caplog.at_level("WARNING", logger="backend.pipeline"):
        result = segment_raster(path, "the red shore", Vocabulary(image_size=128))
    assert len(result.warnings) == 1
    assert "never saw 'shore' in training" in result.warnings[0]
    assert result.warnings[0] in caplog.text
    plain = segment_raster(path, "the red shore", RedSegmenter(image_size=128))
    assert plain.warnings == []
    assert [p.wkt for p in plain.polygons] == [p.wkt for p in result.polygons]
    assert segment_raster(path, "red", Vocabulary(image_size=128)).warnings == []
