"""Small generated rasters for the batch tests: objects placed across the chunk borders.

With ``tile_px=128, overlap_px=16, chunk_tiles=2`` a 360 x 300 raster is 2 x 2 chunks; every
raster holds a rectangle across the chunk corner (4 chunks), a ring across the row border
(its hole too), an interior rectangle, and two squares that touch only at a corner across the
row border (they must stay apart: 4-connectivity).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from backend.batch.planner import axis_chunks

TILE, OVERLAP, CHUNK_TILES = 128, 16, 2
HEIGHT, WIDTH = 360, 300
RED = np.array([220, 30, 30], dtype=np.uint8)
ARGS = ["--tile-px", str(TILE), "--overlap-px", str(OVERLAP), "--chunk-tiles", str(CHUNK_TILES),
        "--gsd", "native"]  # fmt: skip


def borders(height: int = HEIGHT, width: int = WIDTH) -> tuple[int, int]:
    """Row and column of the first inner chunk border."""
    rows = axis_chunks(height, height, scale=1.0, tile_px=TILE, overlap_px=OVERLAP,
                       chunk_tiles=CHUNK_TILES)  # fmt: skip
    cols = axis_chunks(width, width, scale=1.0, tile_px=TILE, overlap_px=OVERLAP,
                       chunk_tiles=CHUNK_TILES)  # fmt: skip
    return rows[1].core[0], cols[1].core[0]


def objects(k: int) -> list[tuple[str, list[tuple[int, int, int, int]]]]:
    """``(name, [(r0, r1, c0, c1) filled, then holes...])`` of raster ``k``, pixel boxes."""
    br, bc = borders()
    return [
        ("corner", [(br - 20 - k, br + 15, bc - 25, bc + 10 + k)]),
        ("interior", [(30 + k, 60 + k, 30, 80)]),
        ("ring", [(br - 40, br + 40, 40, 120), (br - 20, br + 20 + k % 3, 60, 100)]),
        ("touch_a", [(br - 10, br, 250, 260)]),
        ("touch_b", [(br, br + 10, 260, 270)]),
    ]


def crs_of(k: int) -> tuple[str, tuple[float, float]]:
    """Two CRSs: even rasters UTM 33N, odd ones Web Mercator (origin, 0.5 m pixels)."""
    if k % 2 == 0:
        return "EPSG:32633", (500_000.0 + 1000 * k, 5_000_000.0)
    return "EPSG:3857", (1_500_000.0 + 1000 * k, 6_000_000.0)


def write_raster(path: Path, k: int, *, bands: int = 3) -> None:
    """Raster ``k``: grey-green background, red objects of :func:`objects`."""
    rgb = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    rgb[...] = (90, 120, 80)
    for _, boxes in objects(k):
        (r0, r1, c0, c1), *holes = boxes
        rgb[r0:r1, c0:c1] = RED
        for h0, h1, g0, g1 in holes:
            rgb[h0:h1, g0:g1] = (90, 120, 80)
    crs, (x0, y0) = crs_of(k)
    data = np.moveaxis(rgb, 2, 0)
    if bands == 4:
        data = np.concatenate([data, np.full((1, HEIGHT, WIDTH), 255, np.uint8)])
    with rasterio.open(
        path, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=bands, dtype="uint8",
        crs=crs, transform=from_origin(x0, y0, 0.5, 0.5), tiled=True, blockxsize=128,
        blockysize=128, compress="deflate",
    ) as dst:  # fmt: skip
        dst.write(data)


def make_set(folder: Path, n: int = 12, *, corrupt: bool = True) -> list[Path]:
    """``n`` rasters ``r00.tif`` ... plus ``corrupt.tif`` (not a TIFF at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        path = folder / f"r{k:02d}.tif"
        write_raster(path, k)
        paths.append(path)
    if corrupt:
        (folder / "corrupt.tif").write_bytes(b"II*\x00 this is not really a GeoTIFF" * 10)
    return paths


class TileMeanSegmenter:
    """A stand-in whose output depends on the whole tile (red pixels x tile mean), so tiling
    and blending matter: chunked and whole-raster runs agree only if tiles and weights do."""

    name = "standin-tile-mean"
    checkpoint_sha256 = ""
    gsd_m = None

    def __init__(self, image_size: int = TILE) -> None:
        self.image_size = image_size

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        red = (image[..., 0] > 150) & (image[..., 1] < 100)
        level = 0.45 + 4.0 * float(red.mean())  # tiles with more red are more confident
        ramp = np.linspace(0.0, 0.2, image.shape[1], dtype=np.float32)[None, :]
        return np.clip(red * (level + ramp), 0.0, 1.0).astype(np.float32)


def make_tile_mean(image_size: int = TILE) -> TileMeanSegmenter:
    """Factory for ``SegmenterSpec("factory", {"target": "batch_data:make_tile_mean"})``."""
    return TileMeanSegmenter(image_size)
