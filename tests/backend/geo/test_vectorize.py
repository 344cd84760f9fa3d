"""Mask to polygons, seam merging and true areas."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry import Polygon, box

from backend.geo.vectorize import (
    SeamMerger,
    geodesic_areas_m2,
    mask_to_polygons,
    pixel_to_map,
    strip_pieces,
)


def test_mask_to_polygons_square_and_speck():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:5, 3:6] = True
    mask[8, 8] = True
    transform = Affine(0.5, 0, 100.0, 0, -0.5, 200.0)
    polygons = mask_to_polygons(mask, transform, min_area_px=2)
    assert len(polygons) == 1
    assert polygons[0].area == pytest.approx(9 * 0.25)
    assert polygons[0].bounds == pytest.approx((101.5, 197.5, 103.0, 199.0))


def test_mask_to_polygons_keeps_holes():
    mask = np.zeros((10, 10), dtype=bool)
    mask[1:9, 1:9] = True
    mask[4:6, 4:6] = False
    (polygon,) = mask_to_polygons(mask, Affine.identity())
    assert len(polygon.interiors) == 1 and polygon.area == 60


def test_strip_pieces_sums_probabilities_inside_each_polygon():
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:3, 1:3] = True  # rectangle
    mask[1:5, 5:8] = True
    mask[2, 6] = False  # non-rectangular (has a hole)
    prob = np.where(mask, 0.8, 0.1).astype(np.float32)
    prob[1, 1] = 1.0
    pieces = sorted(strip_pieces(mask, prob, row_off=100, col_off=50), key=lambda p: p.pixels)
    assert [p.pixels for p in pieces] == [4, 11]
    assert pieces[0].prob_sum == pytest.approx(1.0 + 3 * 0.8)
    assert pieces[1].score == pytest.approx(0.8)
    assert pieces[0].geometry.bounds == (51, 101, 53, 103)  # global pixel coordinates


def _strip(mask_rows, top):
    mask = np.array(mask_rows, dtype=bool)
    return strip_pieces(mask, mask.astype(np.float32), row_off=top, col_off=0), top + len(mask)


def test_seam_merger_joins_across_strips_and_keeps_corner_touches_apart():
    merger = SeamMerger()
    finished = []
    # a U shape: two arms in strip 1 joined by the bottom bar in strip 2;
    # a separate pixel touching the U only at a corner in strip 2
    pieces, bottom = _strip([[1, 0, 1, 0, 0], [1, 0, 1, 0, 0]], 0)
    finished += merger.add_strip(pieces, 0, bottom, last=False)
    assert finished == []  # both arms reach the seam
    pieces, bottom2 = _strip([[1, 1, 1, 0, 0], [0, 0, 0, 1, 0]], bottom)
    finished += merger.add_strip(pieces, bottom, bottom2, last=True)
    assert sorted(p.pixels for p in finished) == [1, 7]
    u_shape = max(finished, key=lambda p: p.pixels)
    assert isinstance(u_shape.geometry, Polygon) and u_shape.prob_sum == 7


def test_seam_merger_emits_finished_pieces_early():
    merger = SeamMerger()
    pieces, bottom = _strip([[1, 0, 0], [0, 0, 1]], 0)
    done = merger.add_strip(pieces, 0, bottom, last=False)
    assert [p.pixels for p in done] == [1]  # the top-left pixel cannot grow any more


def test_pixel_to_map_is_the_affine():
    transform = Affine(2.0, 0.5, 10.0, 0.25, -2.0, 20.0)
    (mapped,) = pixel_to_map([box(0, 0, 1, 1)], transform)
    expected = {transform @ (0, 0), transform @ (1, 0), transform @ (1, 1), transform @ (0, 1)}
    assert {tuple(round(v, 9) for v in c) for c in mapped.exterior.coords} == {
        tuple(round(v, 9) for v in c) for c in expected
    }


def test_geodesic_area_subtracts_holes_and_handles_mercator():
    # a 100 m square with a 50 m hole near Oslo, in UTM 32N and in World Mercator
    utm = CRS.from_epsg(32632)
    square = box(600_000, 6_640_000, 600_100, 6_640_100).difference(
        box(600_025, 6_640_025, 600_075, 6_640_075)
    )
    (area_utm,) = geodesic_areas_m2([square], utm.to_wkt())
    assert area_utm == pytest.approx(7500, rel=2e-3)  # UTM scale error is < 0.1 %
    to_merc = Transformer.from_crs(utm, "EPSG:3395", always_xy=True)
    merc = shapely.transform(square, lambda xy: np.column_stack(to_merc.transform(*xy.T)))
    (area_merc,) = geodesic_areas_m2([merc], CRS.from_epsg(3395).to_wkt())
    assert area_merc == pytest.approx(area_utm, rel=1e-4)
    assert merc.area > 3 * area_merc  # planar Mercator area would be wildly wrong at 60 N


def test_strip_pieces_of_a_sparse_wide_strip_are_those_of_the_whole_strip():
    """Only the True pixels' bounding box is traced: same polygons, coordinates and sums."""
    mask = np.zeros((40, 3000), dtype=bool)
    mask[10:20, 2000:2012] = True
    mask[25:30, 2500:2503] = True
    mask[14:16, 2004:2006] = False  # a hole
    prob = np.where(mask, 0.75, 0.25).astype(np.float32)
    prob[10, 2000] = 1.0
    pieces = sorted(strip_pieces(mask, prob, row_off=7, col_off=11), key=lambda p: p.pixels)
    assert [p.pixels for p in pieces] == [15, 116]
    assert pieces[0].geometry.bounds == (2511, 32, 2514, 37)
    assert pieces[1].geometry.bounds == (2011, 17, 2023, 27)
    assert len(pieces[1].geometry.interiors) == 1
    assert pieces[0].prob_sum == pytest.approx(15 * 0.75)
    assert pieces[1].prob_sum == pytest.approx(115 * 0.75 + 1.0)
    assert strip_pieces(np.zeros((5, 9), dtype=bool), np.zeros((5, 9), np.float32), 0, 0) == []
