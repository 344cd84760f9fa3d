"""The area-of-interest option: only pixels inside the AOI polygon can become polygons."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import shapely
import shapely.ops
from pyproj import Transformer
from shapely.geometry import box

from backend.errors import InputError
from backend.pipeline import segment_raster
from backend.standins import ConstantSegmenter, RedSegmenter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_data as md

RES = 0.5
X0, Y0 = md.UTM33_ORIGIN


def utm_box(row0: int, col0: int, row1: int, col1: int) -> shapely.Polygon:
    return box(X0 + col0 * RES, Y0 - row1 * RES, X0 + col1 * RES, Y0 - row0 * RES)


def square_raster(path: Path, rect=(40, 60, 100, 140)) -> Path:
    image = md.paint(md.background(256, 256), md.rect_mask(256, 256, *rect))
    return md.write_geotiff(path, image, transform=md.utm_transform())


def test_aoi_cuts_the_object_to_the_inside_pixels(tmp_path):
    path = square_raster(tmp_path / "sq.tif")
    aoi = utm_box(0, 0, 70, 256)  # upper part: rows 0-69 of the red square's rows 40-99
    result = segment_raster(path, "red", RedSegmenter(image_size=128), aoi=aoi)
    assert len(result) == 1
    assert result.polygons[0].symmetric_difference(utm_box(40, 60, 70, 140)).area < 1e-6
    assert result.attributes[0]["pixels"] == 30 * 80
    assert result.attributes[0]["score"] == pytest.approx(1.0)  # mean of the inside part only


def test_aoi_in_another_crs_and_as_wkt_without_bbox(tmp_path):
    path = square_raster(tmp_path / "sq.tif")
    aoi_utm = utm_box(0, 100, 256, 256)  # right part: columns 100-255
    to_4326 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    aoi_4326 = shapely.ops.transform(to_4326.transform, shapely.segmentize(aoi_utm, 5.0))
    result = segment_raster(
        path, "red", RedSegmenter(image_size=128), aoi=aoi_4326.wkt, aoi_crs="EPSG:4326"
    )
    assert len(result) == 1
    # pixel-centre rule: the reprojected edge is within a fraction of a pixel of column 100
    assert result.polygons[0].symmetric_difference(utm_box(40, 100, 100, 140)).area <= 60 * RES**2
    assert result.window[1] >= 99  # the window was cut to the AOI's bounds (no bbox given)


def test_aoi_with_a_hole_removes_the_hole(tmp_path):
    path = square_raster(tmp_path / "sq.tif")
    outer = utm_box(0, 0, 256, 256)
    hole = utm_box(50, 80, 80, 120)
    aoi = shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])
    result = segment_raster(path, "red", ConstantSegmenter(1.0, image_size=128), aoi=aoi)
    assert len(result) == 1 and len(result.polygons[0].interiors) == 1
    assert result.polygons[0].area == pytest.approx(outer.area - hole.area)


@pytest.mark.parametrize(
    ("aoi", "match"),
    [("POLYGON ((0 0, 1", "not valid WKT"), ("POINT (1 2)", "no area"), (42, "shapely polygon")],
)
def test_bad_aoi_is_a_clear_input_error(tmp_path, aoi, match):
    path = square_raster(tmp_path / "sq.tif")
    with pytest.raises(InputError, match=match):
        segment_raster(path, "red", RedSegmenter(), aoi=aoi)


def test_aoi_outside_the_raster_is_refused(tmp_path):
    path = square_raster(tmp_path / "sq.tif")
    with pytest.raises(InputError, match="does not overlap"):
        segment_raster(path, "red", RedSegmenter(), aoi=box(0, 0, 10, 10))
