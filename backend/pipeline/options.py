"""Checked keyword options of :func:`~backend.pipeline.segment_raster`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InputError

if TYPE_CHECKING:
    from ..geo.radiometry import StretchMode

GsdOption = float | None | Literal["auto"]


@dataclass(frozen=True)
class _Options:
    text: str
    threshold: float
    min_area_m2: float
    simplify: float
    bands: Sequence[int] | None
    gsd_m: GsdOption
    tile_px: int | None
    overlap_px: int | None
    batch_size: int
    stretch: StretchMode
    overwrite: bool
    strip_rows: int


def _check_options(
    text: Any,
    threshold: float,
    min_area_m2: float,
    simplify: float,
    bands: Sequence[int] | None,
    gsd_m: GsdOption,
    tile_px: int | None,
    overlap_px: int | None,
    batch_size: int,
    stretch: str,
    overwrite: bool,
    strip_rows: int,
) -> _Options:
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"text={text!r} is empty; describe what to segment, e.g. 'the buildings'")
    if not _finite(threshold) or not 0.0 < float(threshold) <= 1.0:
        raise InputError(f"threshold={threshold!r} must be in (0, 1], e.g. 0.5")
    if not _finite(min_area_m2) or float(min_area_m2) < 0:
        raise InputError(f"min_area_m2={min_area_m2!r} must be >= 0 (square metres)")
    if not _finite(simplify) or float(simplify) < 0:
        raise InputError(f"simplify={simplify!r} must be >= 0 (map units of the raster CRS)")
    if gsd_m not in ("auto", None) and (not _finite(gsd_m) or float(gsd_m) <= 0):  # type: ignore[arg-type]
        raise InputError(f"gsd_m={gsd_m!r} must be > 0 metres per pixel, 'auto' or None (native)")
    if tile_px is not None and (not isinstance(tile_px, int) or tile_px < 32):
        raise InputError(f"tile_px={tile_px!r} must be an integer >= 32")
    if overlap_px is not None and (not isinstance(overlap_px, int) or overlap_px < 0):
        raise InputError(f"overlap_px={overlap_px!r} must be an integer >= 0")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size={batch_size!r} must be an integer >= 1")
    if stretch not in ("auto", "percentile", "none"):
        raise InputError(f"stretch={stretch!r} must be 'auto', 'percentile' or 'none'")
    if not isinstance(strip_rows, int) or strip_rows < 1:
        raise InputError(f"strip_rows={strip_rows!r} must be an integer >= 1")
    return _Options(
        text=text.strip(),
        threshold=float(threshold),
        min_area_m2=float(min_area_m2),
        simplify=float(simplify),
        bands=bands,
        gsd_m="auto" if gsd_m == "auto" else (None if gsd_m is None else float(gsd_m)),
        tile_px=tile_px,
        overlap_px=overlap_px,
        batch_size=batch_size,
        stretch=stretch,  # type: ignore[arg-type]
        overwrite=bool(overwrite),
        strip_rows=strip_rows,
    )


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
