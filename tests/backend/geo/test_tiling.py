"""Pure index arithmetic: tile placement, blend weights, spans and linear maps."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geo.tiling import (
    axis_blend,
    expand_span,
    iter_tiles,
    linear_map,
    source_span,
    tile_starts,
)


@pytest.mark.parametrize("size", [3, 10, 64, 65, 257, 1024, 1000])
def test_tiles_cover_every_pixel_and_are_full_size_when_possible(size):
    covered = np.zeros((size, size), dtype=int)
    for tile in iter_tiles(size, size, tile_px=64, overlap_px=8):
        covered[tile.slices] += 1
        if size >= 64:
            assert tile.height == tile.width == 64
        assert tile.row_off + tile.height <= size and tile.col_off + tile.width <= size
    assert covered.min() >= 1


def test_tile_starts_pull_back_and_stride():
    assert tile_starts(200, tile_px=64, overlap_px=8) == [0, 56, 112, 136]
    assert tile_starts(64, tile_px=64, overlap_px=8) == [0]
    assert tile_starts(10, tile_px=64, overlap_px=8) == [0]


@pytest.mark.parametrize(("tile_px", "overlap_px"), [(64, 64), (64, -1), (64, 100)])
def test_bad_overlap_is_rejected(tile_px, overlap_px):
    with pytest.raises(ValueError, match="overlap_px"):
        tile_starts(100, tile_px=tile_px, overlap_px=overlap_px)


@pytest.mark.parametrize(("size", "overlap"), [(200, 8), (100, 32), (300, 0), (50, 8), (64, 16)])
def test_blend_weights_are_positive_and_complementary(size, overlap):
    blend = axis_blend(size, tile_px=64, overlap_px=overlap)
    assert blend.total.shape == (size,)
    assert blend.total.min() > 0
    for start, weights in zip(blend.starts, blend.weights, strict=False):
        assert weights.size == min(64, size - start)
        assert weights.min() > 0 and weights.max() <= 1
    # where at most two tiles overlap, sin^2 / cos^2 ramps sum to exactly 1
    cover = np.zeros(size, dtype=int)
    for start, weights in zip(blend.starts, blend.weights, strict=False):
        cover[start : start + weights.size] += 1
    assert np.allclose(blend.total[cover <= 2], 1.0, atol=1e-6)


def test_blend_edges_of_the_axis_are_not_ramped():
    blend = axis_blend(200, tile_px=64, overlap_px=8)
    assert blend.weights[0][0] == 1.0 and blend.weights[-1][-1] == 1.0
    assert blend.weights[0][-1] < 0.1 and blend.weights[1][0] < 0.1


def test_expand_span_centres_and_clips():
    assert expand_span(10, 20, min_size=64, limit=1000) == (0, 64)
    assert expand_span(500, 510, min_size=64, limit=1000) == (473, 537)
    assert expand_span(990, 1000, min_size=64, limit=1000) == (936, 1000)
    assert expand_span(0, 30, min_size=64, limit=40) == (0, 40)
    assert expand_span(100, 300, min_size=64, limit=1000) == (100, 300)


def test_linear_map_identity_and_half_pixel_centres():
    ident = linear_map(0, 5, scale=1.0, src_start=0, src_stop=5)
    assert np.array_equal(ident.lo, np.arange(5)) and np.allclose(ident.frac, 0)
    # destination 2x finer: centre of dst pixel 1 is at src coordinate 0.25
    fine = linear_map(0, 6, scale=2.0, src_start=0, src_stop=3)
    src = np.array([10.0, 20.0, 30.0])
    values = (1 - fine.frac) * src[fine.lo] + fine.frac * src[fine.hi]
    assert np.allclose(values, [10, 12.5, 17.5, 22.5, 27.5, 30])  # clamped at the ends


def test_linear_map_relative_indices_and_source_span():
    lo, hi = source_span(100, 120, scale=2.5, src_size=1000)
    mapping = linear_map(100, 120, scale=2.5, src_start=lo, src_stop=hi)
    assert mapping.lo.min() == 0 and mapping.hi.max() == hi - lo - 1
    assert source_span(0, 10, scale=2.5, src_size=3) == (0, 3)
