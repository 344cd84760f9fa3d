"""Generated benchmark rasters: RGB uint8, 512 px internal tiles, DEFLATE, EPSG:32633.

Red squares sit at known places on a regular grid, plus one that straddles a model-tile
seam (tile 1024, overlap 128 -> the first seam band is columns/rows 896-1024). Written block
by block, so generating a 100 Mpx file needs little memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

ORIGIN_X = 500_000.0
ORIGIN_Y = 5_000_000.0
PIXEL_M = 0.5
SQUARE_PX = 48
SPACING_PX = 1500
SEAM_SQUARE = (980, 980)  # (row, col): crosses the 896-1024 overlap band and the 1024 line


@dataclass(frozen=True)
class Square:
    """A red square: pixel rows/cols ``[row, row + size)`` and its map box."""

    row: int
    col: int
    size: int

    def map_box(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` in EPSG:32633 metres."""
        minx = ORIGIN_X + self.col * PIXEL_M
        maxx = ORIGIN_X + (self.col + self.size) * PIXEL_M
        maxy = ORIGIN_Y - self.row * PIXEL_M
        miny = ORIGIN_Y - (self.row + self.size) * PIXEL_M
        return (minx, miny, maxx, maxy)


def squares_for(size_px: int) -> list[Square]:
    """Squares inside a ``size_px`` x ``size_px`` raster (grid + one across a tile seam)."""
    squares = []
    for row in range(200, size_px - SQUARE_PX - 100, SPACING_PX):
        for col in range(200, size_px - SQUARE_PX - 100, SPACING_PX):
            squares.append(Square(row, col, SQUARE_PX))
    r, c = SEAM_SQUARE
    if size_px > 1024 + SQUARE_PX:
        squares.append(Square(r, c, SQUARE_PX * 2))
    return squares


GENERATOR = "2"
"""Version of the raster recipe (a GeoTIFF tag); cached rasters of another version are redone."""


def _background(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A textured grey-green background with seeded per-pixel noise; never "red" (R <= 137).

    The noise makes the file compress about 1.4:1 with DEFLATE, like a real orthophoto, so the
    benchmarks pay a realistic decoding cost (a smooth pattern compresses 70:1 and reads for
    almost nothing). It is seeded by the first row, so any strip comes out the same.
    """
    pattern = ((rows[:, None] // 3 + cols[None, :] // 5) % 16).astype(np.uint8) * 4
    noise = np.random.default_rng([2401, int(rows[0])]).integers(
        0, 8, size=(3, rows.size, cols.size), dtype=np.uint8
    )
    rgb = np.empty((3, rows.size, cols.size), dtype=np.uint8)
    rgb[0] = 70 + pattern + noise[0]
    rgb[1] = 110 + pattern + noise[1]
    rgb[2] = 80 + pattern // 2 + noise[2]
    return rgb


def _is_current(path: Path) -> bool:
    """True if ``path`` was written by this recipe version."""
    try:
        with rasterio.open(path) as ds:
            return ds.tags().get("RS2SAM_BENCH_GENERATOR") == GENERATOR
    except rasterio.errors.RasterioIOError:
        return False


def make_raster(path: Path, size_px: int) -> list[Square]:
    """Write the benchmark raster (if missing) and return its squares."""
    squares = squares_for(size_px)
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists() and _is_current(path):
        return squares
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": size_px,
        "height": size_px,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": from_origin(ORIGIN_X, ORIGIN_Y, PIXEL_M, PIXEL_M),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "photometric": "RGB",
        "BIGTIFF": "IF_SAFER",
    }
    tmp = path.with_suffix(".tmp.tif")
    block = 512
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.update_tags(RS2SAM_BENCH_GENERATOR=GENERATOR)
        for row0 in range(0, size_px, block):
            rows = np.arange(row0, min(row0 + block, size_px))
            cols = np.arange(size_px)
            rgb = _background(rows, cols)
            for sq in squares:
                r0, r1 = max(sq.row, row0), min(sq.row + sq.size, row0 + rows.size)
                if r0 < r1:
                    rgb[:, r0 - row0 : r1 - row0, sq.col : sq.col + sq.size] = np.array(
                        [220, 30, 30], dtype=np.uint8
                    )[:, None, None]
            dst.write(rgb, window=Window(0, row0, size_px, rows.size))
    tmp.replace(path)
    meta_path.write_text(json.dumps([sq.__dict__ for sq in squares]))
    return squares
