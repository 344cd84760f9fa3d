"""Opening, georeferencing, windows, bands, stretch and tile reads."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from backend.errors import InputError, RasterReadError, UnsupportedRasterError
from backend.geo.raster import (
    PixelWindow,
    TileReader,
    array_dataset,
    bbox_to_window,
    choose_bands,
    compute_stretch,
    open_raster,
    raster_info,
    resolve_crs,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "data"))
import make_data as md


@pytest.fixture
def utm_raster(tmp_path):
    image = md.paint(md.background(100, 120), md.rect_mask(100, 120, 10, 20, 30, 40))
    return md.write_geotiff(tmp_path / "utm.tif", image, transform=md.utm_transform(0.5))


def _info(path, assume_crs=None):
    with open_raster(path) as ds:
        return raster_info(ds, resolve_crs(ds, assume_crs))


def test_info_has_ground_resolution(utm_raster):
    info = _info(utm_raster)
    assert (info.width, info.height, info.count) == (120, 100, 3)
    assert info.crs == CRS.from_epsg(32633) and not info.has_mask
    assert info.res_m == pytest.approx((0.5 / 0.9996, 0.5 / 0.9996), rel=1e-4)


def test_ground_resolution_of_a_geographic_raster(tmp_path):
    image = md.background(50, 50)
    path = md.write_geotiff(
        tmp_path / "g.tif", image, transform=from_origin(15, 60, 1e-5, 1e-5), crs="EPSG:4326"
    )
    res_x, res_y = _info(path).res_m
    assert res_y == pytest.approx(1.1, rel=0.02)  # 1e-5 deg of latitude
    assert res_x == pytest.approx(res_y * np.cos(np.radians(60)), rel=0.01)


def test_missing_and_not_a_raster(tmp_path):
    with pytest.raises(RasterReadError, match="does not exist"):
        with open_raster(tmp_path / "missing.tif"):
            pass
    fake = tmp_path / "fake.tif"
    fake.write_text("not a raster")
    with pytest.raises(RasterReadError, match="cannot read"):
        with open_raster(fake):
            pass


def test_no_crs_and_assume_crs(tmp_path):
    path = md.write_geotiff(
        tmp_path / "n.tif", md.background(40, 40), transform=md.utm_transform(), crs=None
    )
    with pytest.raises(UnsupportedRasterError, match="no CRS"):
        _info(path)
    assert _info(path, assume_crs="EPSG:32633").crs == CRS.from_epsg(32633)
    with pytest.raises(InputError, match="not a CRS"):
        _info(path, assume_crs="EPSG:nope")


def test_raster_without_geotransform_is_refused(tmp_path):
    path = md.write_geotiff(
        tmp_path / "i.tif", md.background(40, 40), transform=Affine.identity(), crs=None
    )
    with pytest.raises(UnsupportedRasterError, match="not georeferenced"):
        _info(path, assume_crs="EPSG:32633")


def test_bbox_to_window_exact_edges_and_clipping(utm_raster):
    info = _info(utm_raster)
    x0, y0 = md.UTM33_ORIGIN
    exact = (x0 + 10 * 0.5, y0 - 30 * 0.5, x0 + 40 * 0.5, y0 - 5 * 0.5)
    assert bbox_to_window(info, exact) == PixelWindow(5, 10, 25, 30)
    inside = (x0 + 10.2, y0 - 14.9, x0 + 19.9, y0 - 2.6)
    assert bbox_to_window(info, inside) == PixelWindow(5, 20, 25, 20)
    clipped = (x0 - 100, y0 - 10, x0 + 10, y0 + 100)
    assert bbox_to_window(info, clipped) == PixelWindow(0, 0, 20, 20)
    assert bbox_to_window(info, None) == PixelWindow(0, 0, 100, 120)


def test_bbox_in_another_crs_is_densified(utm_raster):
    info = _info(utm_raster)
    x0, y0 = md.UTM33_ORIGIN
    from rasterio.warp import transform_bounds

    lonlat = transform_bounds("EPSG:32633", "EPSG:4326", x0 + 5, y0 - 40, x0 + 45, y0 - 5)
    window = bbox_to_window(info, lonlat, "EPSG:4326")
    assert window.row_off <= 10 and window.col_off <= 10
    assert window.row_stop >= 80 and window.col_stop >= 90


def test_bbox_edges_not_just_corners_are_transformed(tmp_path):
    """A lon/lat bbox straddling the UTM central meridian: its southern edge bulges south
    between the corners, so a corners-only transform would miss the bottom rows."""
    import math

    from pyproj import Transformer

    x0, y0, res = 350_000.0, 6_700_000.0, 1000.0  # 300 x 200 km around 15 E, 59-60 N
    path = md.write_geotiff(
        tmp_path / "wide.tif", md.background(200, 300), transform=from_origin(x0, y0, res, res)
    )
    lon0, lat0, lon1, lat1 = 13.0, 58.9, 17.0, 60.1
    window = bbox_to_window(_info(path), (lon0, lat0, lon1, lat1), "EPSG:4326")
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True)

    def pixel_bounds(n: int) -> tuple[int, int, int, int]:
        s = np.linspace(0.0, 1.0, n)
        along_lon = lon0 + (lon1 - lon0) * s
        along_lat = lat0 + (lat1 - lat0) * s
        lon = np.concatenate([along_lon, np.full(n, lon1), along_lon, np.full(n, lon0)])
        lat = np.concatenate([np.full(n, lat0), along_lat, np.full(n, lat1), along_lat])
        x, y = to_utm.transform(lon, lat)
        cols, rows = (x - x0) / res, (y0 - y) / res
        return (
            math.floor(rows.min()),
            math.floor(cols.min()),
            math.ceil(rows.max()),
            math.ceil(cols.max()),
        )

    dense = pixel_bounds(2001)
    corners = pixel_bounds(2)
    got = (window.row_off, window.col_off, window.row_stop, window.col_stop)
    assert got == dense
    assert corners[2] < dense[2]  # the test can tell densified edges from corners


@pytest.mark.parametrize(
    ("bbox", "match"),
    [
        ((5, 0, 1, 10), "min >= max"),
        ((0, 5, 10, 1), "min >= max"),
        ((0, 0, 10), "4 finite numbers"),
        (("a", 0, 1, 2), "must be 4 numbers"),
        ((0, 0, 10, 10), "does not overlap"),
    ],
)
def test_bad_bboxes(utm_raster, bbox, match):
    with pytest.raises(InputError, match=match):
        bbox_to_window(_info(utm_raster), bbox)


def test_choose_bands(tmp_path, utm_raster):
    assert choose_bands(_info(utm_raster), None) == (1, 2, 3)
    assert choose_bands(_info(utm_raster), [2]) == (2, 2, 2)
    with pytest.raises(InputError, match="band 4 does not exist"):
        choose_bands(_info(utm_raster), [1, 2, 4])
    with pytest.raises(InputError, match="1 band"):
        choose_bands(_info(utm_raster), [1, 2])
    rgba = np.concatenate([md.background(40, 40), np.full((1, 40, 40), 255, np.uint8)])
    path = md.write_geotiff(
        tmp_path / "a.tif",
        rgba[[3, 0, 1, 2]],  # alpha FIRST: it must still be skipped
        transform=md.utm_transform(),
        colorinterp=[ColorInterp.alpha, ColorInterp.red, ColorInterp.green, ColorInterp.blue],
    )
    assert choose_bands(_info(path), None) == (2, 3, 4)
    two = md.write_geotiff(tmp_path / "two.tif", rgba[:2], transform=md.utm_transform())
    with pytest.raises(UnsupportedRasterError, match="choose them explicitly"):
        choose_bands(_info(two), None)


def test_stretch_identity_for_uint8_and_percentiles_for_uint16(tmp_path, utm_raster):
    with open_raster(utm_raster) as ds:
        assert compute_stretch(ds, (1, 2, 3)) is None
        assert compute_stretch(ds, (1, 2, 3), mode="percentile") is not None
    data = md.to_uint16(md.background(100, 100))
    data[:, :, :10] = 0
    path = md.write_geotiff(tmp_path / "u16.tif", data, transform=md.utm_transform(), nodata=0)
    with open_raster(path) as ds:
        stretch = compute_stretch(ds, (1, 2, 3))
    valid = data[0][:, 10:]
    assert stretch.lo[0] == pytest.approx(np.percentile(valid, 2))  # nodata excluded
    assert stretch.hi[0] == pytest.approx(np.percentile(valid, 98))


def test_tile_reader_resamples_on_the_anchored_grid(tmp_path):
    # 8 x 8 raster of value = column index; 2 raster px per working px -> means of pairs
    data = np.tile(np.arange(8, dtype=np.uint8), (3, 8, 1))
    path = md.write_geotiff(tmp_path / "c.tif", data, transform=md.utm_transform())
    with open_raster(path) as ds:
        reader = TileReader(ds, (1, 2, 3), None, scale_y=2, scale_x=2, has_mask=False)
        rgb, valid = reader.read_rgb(1, 1, 2, 3)
    assert valid is None and rgb.shape == (2, 3, 3)
    assert rgb[0, :, 0].tolist() == [3, 5, 7]  # means of raster cols (2, 3), (4, 5), (6, 7)


def test_array_dataset_roundtrip_with_mask_and_gdal_geotransform():
    array = np.arange(5 * 6 * 3, dtype=np.uint16).reshape(5, 6, 3)
    valid = np.ones((5, 6), dtype=bool)
    valid[0, 0] = False
    transform = md.utm_transform(2.0)
    with array_dataset(array, transform.to_gdal(), "EPSG:32633", valid_mask=valid) as ds:
        assert ds.transform == transform and ds.crs == CRS.from_epsg(32633)
        assert np.array_equal(ds.read().transpose(1, 2, 0), array)
        masks = ds.read_masks(1)
        assert masks[0, 0] == 0 and masks[1, 1] == 255
    with pytest.raises(InputError, match="GDAL geotransform"):
        with array_dataset(array, (1, 2, 3), "EPSG:32633"):
            pass
