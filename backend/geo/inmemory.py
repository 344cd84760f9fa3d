"""Pixels already in memory as a raster: a GeoTIFF in GDAL's ``/vsimem/`` file system."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.io import DatasetReader, MemoryFile

from ..errors import InputError
from .raster import _first_line

__all__ = ["array_dataset", "array_file", "warm_up_gdal"]


def warm_up_gdal() -> None:
    """Write and read back a 1 x 1 GeoTIFF in memory: rasterio's GDAL and PROJ start-up.

    The first raster a thread opens costs 15-25 ms more than the next ones (driver and PROJ
    database start-up, partly per thread); calling this on the thread that will run the
    queries, before they are asked (the dock's preload), moves that out of the first answer.
    """
    from rasterio.transform import from_origin

    profile = {"driver": "GTiff", "width": 1, "height": 1, "count": 1, "dtype": "uint8"}
    with rasterio.Env(), MemoryFile() as memory:
        with memory.open(
            **profile, crs=CRS.from_epsg(32633), transform=from_origin(0.0, 1.0, 1.0, 1.0)
        ) as dataset:
            dataset.write(np.zeros((1, 1, 1), dtype=np.uint8))
        with memory.open() as dataset:
            dataset.read(1)
            dataset.crs.to_wkt()


@contextlib.contextmanager
def array_dataset(
    array: np.ndarray,
    transform: Affine | Sequence[float],
    crs: Any,
    *,
    valid_mask: np.ndarray | None = None,
) -> Iterator[DatasetReader]:
    """:func:`array_file`, opened: a read-only rasterio dataset over in-memory pixels."""
    with (
        array_file(array, transform, crs, valid_mask=valid_mask) as path,
        rasterio.open(path) as dataset,
    ):
        yield dataset


@contextlib.contextmanager
def array_file(
    array: np.ndarray,
    transform: Affine | Sequence[float],
    crs: Any,
    *,
    valid_mask: np.ndarray | None = None,
) -> Iterator[str]:
    """Write in-memory pixels as a GeoTIFF in GDAL's memory file system; yield its path.

    The ``/vsimem/`` path opens like any raster file (and is removed on exit), so in-memory
    input goes through exactly the code path of a file.

    Args:
        array: ``(H, W, B)`` or ``(H, W)`` pixels, any numeric dtype.
        transform: Pixel-to-map ``Affine``, or a 6-number GDAL geotransform
            ``(x0, dx, rx, y0, ry, dy)`` as ``osgeo.gdal`` and QGIS give it.
        crs: CRS of ``transform`` (WKT, ``"EPSG:N"``, ...).
        valid_mask: Optional ``(H, W)`` bool, True where pixels are valid.

    Raises:
        InputError: Bad shapes, dtype or CRS.
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise InputError(f"array must be (H, W, bands), got shape {np.shape(array)}")
    if arr.shape[0] <= 4 < arr.shape[2]:
        raise InputError(
            f"array shape {arr.shape} looks like (bands, H, W) as rasterio's read() returns "
            "it; pass np.moveaxis(array, 0, -1), which is (H, W, bands)"
        )
    if arr.dtype.kind not in "uif" or arr.dtype.itemsize > 8:
        raise InputError(
            f"array dtype {arr.dtype} is not a numeric raster type; use uint8, uint16, int16, "
            "float32 or float64"
        )
    if arr.dtype == np.float16:  # GDAL has no float16: widen (exact)
        arr = arr.astype(np.float32)
    if not isinstance(transform, Affine):
        try:
            coeffs = tuple(float(v) for v in transform)
        except (TypeError, ValueError) as exc:
            raise InputError(f"transform={transform!r} must be an Affine or 6 numbers") from exc
        if len(coeffs) != 6:
            raise InputError(
                f"transform={transform!r} must be an Affine or a GDAL geotransform "
                "(x0, dx, rx, y0, ry, dy)"
            )
        transform = Affine.from_gdal(*coeffs)
    try:
        crs_obj = CRS.from_user_input(crs)
    except (CRSError, ValueError, TypeError) as exc:
        raise InputError(f"crs={str(crs)[:80]!r} is not a CRS ({_first_line(exc)})") from exc
    height, width, count = arr.shape
    if valid_mask is not None and np.shape(valid_mask) != (height, width):
        raise InputError(
            f"valid_mask must be (H, W) = {(height, width)}, got shape {np.shape(valid_mask)}"
        )
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), MemoryFile() as memfile:
        with memfile.open(
            driver="GTiff",
            width=width,
            height=height,
            count=count,
            dtype=arr.dtype,
            crs=crs_obj,
            transform=transform,
            tiled=True,
        ) as dst:
            dst.write(np.moveaxis(arr, 2, 0))
            if valid_mask is not None:
                valid = np.asarray(valid_mask, dtype=bool)
                dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
        yield memfile.name
