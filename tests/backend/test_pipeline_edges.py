"""Raster edges: border tiles see real pixels, a uniform raster gives no polygons at its edges.

Issue 16: with the zero padding of a working grid smaller than one tile, the shipped weights
read the black border as water and returned strips along the raster's bottom and right
edges. These stand-ins react to exactly that (black pixels, or any pixel that is not the
raster's own), so they fail on a black border and pass on the mirrored one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from backend.geo.tiling import mirror_pad, tile_starts
from backend.pipeline import segment_raster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_data as md

CONTEXT_PX = 4
"""How far the stand-ins look around a pixel (a model's receptive field, in small)."""


def near(mask: np.ndarray, radius: int = CONTEXT_PX) -> np.ndarray:
    """``(H, W)`` bool: True where ``mask`` is True within ``radius`` px (square dilation)."""
    h, w = mask.shape
    grown = np.pad(mask, radius)
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= grown[dy : dy + h, dx : dx + w]
    return out


class DarkSegmenter:
    """Probability 1 near near-black pixels (how the shipped weights read zero padding)."""

    name = "standin-dark"

    def __init__(self, image_size: int) -> None:
        self.image_size = image_size
        self.gsd_m = None

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        return near(image.max(axis=-1) < 20).astype(np.float32)


class StrangerSegmenter(DarkSegmenter):
    """Probability 1 near any pixel whose colour differs from the raster's only colour."""

    def __init__(self, image_size: int, colour: tuple[int, int, int]) -> None:
        super().__init__(image_size)
        self.colour = np.array(colour, dtype=np.uint8)

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        return near(np.any(image != self.colour, axis=-1)).astype(np.float32)


class RecordingSegmenter(DarkSegmenter):
    """Keeps every image it is given; predicts nothing."""

    def __init__(self, image_size: int) -> None:
        super().__init__(image_size)
        self.images: list[np.ndarray] = []

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        self.images.append(image.copy())
        return np.zeros(image.shape[:2], dtype=np.float32)


COLOUR = (90, 140, 60)


def uniform_raster(path: Path, h: int, w: int) -> Path:
    data = np.empty((3, h, w), dtype=np.uint8)
    data[:] = np.array(COLOUR, dtype=np.uint8)[:, None, None]
    return md.write_geotiff(path, data, transform=md.utm_transform())


@pytest.mark.parametrize(
    ("h", "w", "tile_px", "gsd_m"),
    [
        (40, 50, 128, None),  # whole raster smaller than one tile: padded on both axes
        (250, 250, 256, None),  # the Dutch orthophoto's case: 6 rows/cols short of a tile
        (200, 300, 128, 1.0),  # 0.5 m raster at 1 m: working grid 100 x 150, padded rows
        (300, 290, 128, None),  # larger than a tile: last tiles pulled back, no padding
    ],
)
def test_uniform_raster_has_no_polygons_along_its_edges(tmp_path, h, w, tile_px, gsd_m):
    path = uniform_raster(tmp_path / "uniform.tif", h, w)
    for seg in (DarkSegmenter(tile_px), StrangerSegmenter(tile_px, COLOUR)):
        result = segment_raster(path, "water", seg, gsd_m=gsd_m, overlap_px=16)
        assert len(result) == 0, (type(seg).__name__, [p.bounds for p in result.polygons])
        assert result.pixel_counts["positive"] == 0


def noise_raster(path: Path, h: int, w: int) -> tuple[Path, np.ndarray]:
    """Colour noise in [1, 255] (no black pixel): ``(H, W, 3)`` copy returned."""
    rng = np.random.default_rng(7)
    data = rng.integers(1, 256, size=(3, h, w), dtype=np.uint8)
    return md.write_geotiff(path, data, transform=md.utm_transform()), np.moveaxis(data, 0, -1)


def test_border_tiles_of_a_large_raster_are_real_raster_windows(tmp_path):
    h, w, tile, overlap = 300, 290, 128, 16
    path, pixels = noise_raster(tmp_path / "noise.tif", h, w)
    seg = RecordingSegmenter(tile)
    segment_raster(path, "x", seg, overlap_px=overlap)
    rows = tile_starts(h, tile_px=tile, overlap_px=overlap)
    cols = tile_starts(w, tile_px=tile, overlap_px=overlap)
    assert rows[-1] == h - tile and cols[-1] == w - tile  # pulled back inside the raster
    assert len(seg.images) == len(rows) * len(cols)
    windows = [pixels[r : r + tile, c : c + tile] for r in rows for c in cols]
    for image, window in zip(seg.images, windows, strict=True):
        np.testing.assert_array_equal(image, window)


def test_a_raster_smaller_than_a_tile_is_mirrored_not_blackened(tmp_path):
    h, w, tile = 40, 50, 128
    path, pixels = noise_raster(tmp_path / "small.tif", h, w)
    seg = RecordingSegmenter(tile)
    segment_raster(path, "x", seg)
    (image,) = seg.images
    assert image.shape == (tile, tile, 3)
    np.testing.assert_array_equal(image[:h, :w], pixels)
    assert image.min() >= 1  # no black padding anywhere
    np.testing.assert_array_equal(image, np.pad(pixels, ((0, 88), (0, 78), (0, 0)), "reflect"))
    # mirrored about the last row/column: the row below the raster is its second-to-last
    np.testing.assert_array_equal(image[h, :w], pixels[h - 2])
    np.testing.assert_array_equal(image[:h, w], pixels[:, w - 2])


def test_mirror_pad_shapes_and_errors():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = mirror_pad(image, 8)
    assert padded.shape == (8, 8, 3)
    np.testing.assert_array_equal(padded[:, :3, 0][:, 0], [0, 9, 0, 9, 0, 9, 0, 9])
    single = mirror_pad(np.full((1, 1), 5, dtype=np.uint8), 4)
    assert single.shape == (4, 4) and (single == 5).all()
    assert mirror_pad(image, 3).shape == (3, 3, 3)
    assert mirror_pad(padded, 8) is padded
    with pytest.raises(ValueError, match="larger than the tile size"):
        mirror_pad(image, 2)
