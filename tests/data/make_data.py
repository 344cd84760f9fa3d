"""Seeded generator of the synthetic GeoTIFFs used by the pipeline tests.

Scenes are a gray, correlated-noise background (R = G = B, so no background pixel is ever
"red" for ``backend.standins.RedSegmenter``, even after a per-band stretch) with pure red
rectangles, rings and discs at known pixel positions. Tests call these functions to write
rasters into ``tmp_path``; running the file writes the standard set into a folder:

    python tests/data/make_data.py OUT_DIR
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

RED = (220, 30, 30)
UTM33_ORIGIN = (500_000.0, 5_000_000.0)  # EPSG:32633, x = 500 km (central meridian), 45.1 N


def background(height: int, width: int, *, seed: int = 0) -> np.ndarray:
    """``(3, H, W)`` uint8 gray noise in [60, 140], identical in the three bands."""
    rng = np.random.default_rng(seed)
    gray = rng.integers(60, 141, size=(height, width), dtype=np.uint8)
    return np.repeat(gray[None], 3, axis=0)


def paint(image: np.ndarray, mask: np.ndarray, color: Sequence[int] = RED) -> np.ndarray:
    """Set the ``mask`` pixels of ``(3, H, W)`` ``image`` to ``color``, in place."""
    for band, value in enumerate(color):
        image[band][mask] = value
    return image


def rect_mask(height: int, width: int, row0: int, col0: int, row1: int, col1: int) -> np.ndarray:
    """``(H, W)`` bool, True in rows ``[row0, row1)`` and cols ``[col0, col1)``."""
    mask = np.zeros((height, width), dtype=bool)
    mask[row0:row1, col0:col1] = True
    return mask


def ring_mask(
    height: int, width: int, outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]
) -> np.ndarray:
    """A rectangle ``outer`` minus the rectangle ``inner`` (both ``row0, col0, row1, col1``)."""
    return rect_mask(height, width, *outer) & ~rect_mask(height, width, *inner)


def disc_mask(height: int, width: int, row: float, col: float, radius: float) -> np.ndarray:
    """Pixels whose centre lies within ``radius`` px of ``(row, col)``."""
    rr, cc = np.mgrid[0:height, 0:width]
    return (rr + 0.5 - row) ** 2 + (cc + 0.5 - col) ** 2 <= radius**2


def utm_transform(res: float = 0.5, origin: tuple[float, float] = UTM33_ORIGIN) -> Affine:
    """North-up EPSG:32633 transform with square ``res`` m pixels, top-left at ``origin``."""
    return from_origin(origin[0], origin[1], res, res)


def write_geotiff(
    path: str | Path,
    data: np.ndarray,
    *,
    transform: Affine,
    crs: str | None = "EPSG:32633",
    nodata: float | None = None,
    colorinterp: Sequence[ColorInterp] | None = None,
    mask: np.ndarray | None = None,
    blocksize: int = 256,
) -> Path:
    """Write ``(B, H, W)`` ``data`` as a tiled, DEFLATE-compressed GeoTIFF.

    Args:
        path: Output file.
        data: Pixels, band-first.
        transform: Pixel-to-map affine (rotations allowed).
        crs: CRS, or None for a raster without CRS.
        nodata: Nodata value of every band.
        colorinterp: Colour interpretation per band (e.g. RGBA).
        mask: ``(H, W)`` bool, False = no data, written as an internal mask band.
        blocksize: Internal tile size (multiple of 16).
    """
    count, height, width = data.shape
    tiled = height >= blocksize and width >= blocksize
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype,
        "transform": transform,
        "compress": "deflate",
    }
    if crs is not None:
        profile["crs"] = crs
    if tiled:
        profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if colorinterp is not None:
            dst.colorinterp = list(colorinterp)
        if mask is not None:
            dst.write_mask(np.where(mask, 255, 0).astype(np.uint8))
    return Path(path)


def to_uint16(image: np.ndarray, *, seed: int = 1) -> np.ndarray:
    """uint8 ``(B, H, W)`` -> uint16 at a satellite-like range (x 40 + 300, plus noise)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 20, size=image.shape, dtype=np.uint16)
    return image.astype(np.uint16) * 40 + 300 + noise


def standard_set(out_dir: str | Path) -> list[Path]:
    """Write the named fixture rasters into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    h = w = 256
    image = paint(background(h, w), rect_mask(h, w, 40, 60, 100, 140))
    paths = [write_geotiff(out / "rgb_utm33.tif", image, transform=utm_transform())]
    paths.append(
        write_geotiff(
            out / "rgb_4326.tif",
            image,
            transform=from_origin(15.0, 60.0, 1e-5, 1e-5),
            crs="EPSG:4326",
        )
    )
    paths.append(write_geotiff(out / "rgb_no_crs.tif", image, transform=utm_transform(), crs=None))
    nir = background(h, w, seed=5)[:1]
    multi = to_uint16(np.concatenate([image, nir]))
    multi[:, :, :32] = 0  # nodata strip on the left
    paths.append(
        write_geotiff(out / "uint16_4band_nodata.tif", multi, transform=utm_transform(), nodata=0)
    )
    return paths


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "tests/data/generated"
    for written in standard_set(target):
        print(written)
