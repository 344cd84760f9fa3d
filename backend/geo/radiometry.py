"""Radiometry: one whole-raster percentile stretch to uint8, so colours do not change with zoom."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader

from ..errors import RasterReadError, UnsupportedRasterError
from .gdal_errors import gdal_reason

__all__ = ["Stretch", "StretchMode", "compute_stretch"]

logger = logging.getLogger(__name__)

StretchMode = Literal["auto", "percentile", "none"]


@dataclass(frozen=True)
class Stretch:
    """Linear stretch of each band from ``[lo, hi]`` to ``[0, 255]`` (uint8), clipped."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]

    def apply(self, data: np.ndarray) -> np.ndarray:
        """``(B, H, W)`` any dtype -> ``(B, H, W)`` uint8."""
        out = np.empty(data.shape, dtype=np.uint8)
        for b in range(data.shape[0]):
            self.apply_band(data[b], b, out=out[b])
        return out

    def apply_band(self, band: np.ndarray, index: int, *, out: np.ndarray) -> np.ndarray:
        """Stretch one ``(H, W)`` band with the statistics of band ``index`` into uint8 ``out``."""
        span = self.hi[index] - self.lo[index]
        gain = 255.0 / span if span > 0 else 0.0
        values = band.astype(np.float32)
        values -= self.lo[index]
        values *= gain
        np.nan_to_num(values, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(values, 0, 255, out=values)
        np.rint(values, out=values)
        out[...] = values
        return out


def compute_stretch(
    dataset: DatasetReader,
    bands: Sequence[int],
    *,
    mode: StretchMode = "auto",
    percentiles: tuple[float, float] = (2.0, 98.0),
    max_samples: int = 1_000_000,
    has_mask: bool = True,
) -> Stretch | None:
    """The radiometric stretch for the whole raster, or None for identity (uint8).

    ``auto``: identity for uint8, a per-band ``percentiles`` stretch otherwise. ``percentile``:
    always the stretch. ``none``: identity (values outside 0..255 are clipped).

    The percentiles come from ONE decimated read (nearest, at most ``max_samples`` pixels per
    band, overviews used when present) of the whole raster, nodata excluded - not from the
    extent and not per tile, so the same pixel gets the same colour whatever the bbox or the
    tiling (zoom-stable, seam-free).

    Raises:
        UnsupportedRasterError: No valid pixel in the raster.
    """
    unique = sorted(set(bands))
    dtypes = {dataset.dtypes[b - 1] for b in unique}
    if mode == "none" or (mode == "auto" and dtypes == {"uint8"}):
        return None
    factor = max(1.0, math.sqrt(dataset.width * dataset.height / max_samples))
    shape = (
        len(unique),
        max(1, math.ceil(dataset.height / factor)),
        max(1, math.ceil(dataset.width / factor)),
    )
    try:
        data = dataset.read(unique, out_shape=shape, resampling=Resampling.nearest)
        valid = np.ones(shape[1:], dtype=bool)
        if has_mask:
            masks = dataset.read_masks(unique, out_shape=shape, resampling=Resampling.nearest)
            valid = masks.any(axis=0)
    except RasterioError as exc:
        reason = gdal_reason(exc)
        raise RasterReadError(
            f"{dataset.name}: the overview read for the colour statistics failed ({reason}); "
            "the file is damaged or truncated: re-export or re-download it"
        ) from None
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    for k, b in enumerate(unique):
        values = data[k][valid]
        values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if values.size == 0:
            raise UnsupportedRasterError(
                f"raster {dataset.name!r} band {b} has no valid (non-nodata) pixel; "
                "nothing to segment"
            )
        p_lo, p_hi = np.percentile(values, percentiles)
        lo[b], hi[b] = float(p_lo), float(p_hi)
    logger.info("stretch %s: lo=%s hi=%s", percentiles, lo, hi)
    return Stretch(lo=tuple(lo[b] for b in bands), hi=tuple(hi[b] for b in bands))
