"""Chunks of a raster that reproduce the whole-raster run exactly.

A large raster is cut into chunks of about ``chunk_tiles`` x ``chunk_tiles`` model tiles. The
cut follows the tile grid of the *whole-raster* run (``backend.pipeline``): every chunk runs the
same tiles (same places on the same working grid) with the same blend weights as that run over
its *core*, so its probabilities there - and hence its polygons - are those of one
``segment_raster`` call on the whole raster, bit for bit. Cores tile the raster without overlap;
objects crossing a core border are joined afterwards (:mod:`backend.batch.merge`).

Per axis (working grid, tile starts ``t``): the core border between tile groups ``[.., e]`` and
``[e + 1, ..]`` lies in the middle of the overlap of tiles ``e`` and ``e + 1``. A chunk runs every
tile that touches the working pixels its core needs (+2 px of interpolation margin); the first
and last tiles of a chunk lack their outer blend ramps, but those ramps fall outside the core.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..geo.tiling import tile_starts

if TYPE_CHECKING:
    from ..geo.raster import RasterInfo

__all__ = ["AxisChunk", "ChunkWindow", "axis_chunks", "plan_raster"]

_MARGIN_WORK_PX = 2  # working pixels around a core that interpolation may read


@dataclass(frozen=True)
class AxisChunk:
    """One chunk along one axis: raster pixels ``core`` and working pixels ``span`` to tile."""

    core: tuple[int, int]
    span: tuple[int, int]


@dataclass(frozen=True)
class ChunkWindow:
    """A chunk of a raster: core window (raster pixels) and the working span to tile.

    Attributes:
        window: ``(row_off, col_off, height, width)`` of the core, raster pixels.
        span: ``((p0, p1), (q0, q1))`` working rows and columns to tile, or None when the
            chunk is the whole raster (the pipeline's own span then applies).
    """

    window: tuple[int, int, int, int]
    span: tuple[tuple[int, int], tuple[int, int]] | None


def _work_index(raster_px: int, scale: float) -> float:
    """Working-grid coordinate of the centre of raster pixel ``raster_px`` (pipeline convention)."""
    return (raster_px + 0.5) / scale - 0.5


def axis_chunks(
    raster_size: int,
    work_size: int,
    *,
    scale: float,
    tile_px: int,
    overlap_px: int,
    chunk_tiles: int,
) -> list[AxisChunk]:
    """Cut one axis into chunks of ``chunk_tiles`` tiles (see the module docstring).

    Args:
        raster_size: Raster pixels along the axis.
        work_size: Working pixels along the axis (the whole-raster run's span, from 0).
        scale: Raster pixels per working pixel (1.0 = native).
        tile_px: The run's tile size (working pixels).
        overlap_px: The run's tile overlap (working pixels).
        chunk_tiles: Tiles per chunk along the axis (>= 1).
    """
    starts = tile_starts(work_size, tile_px=tile_px, overlap_px=overlap_px)
    if len(starts) <= chunk_tiles:
        return [AxisChunk((0, raster_size), (0, work_size))]
    borders = [0]
    for k in range(chunk_tiles, len(starts), chunk_tiles):
        middle = (starts[k] + starts[k - 1] + tile_px) // 2  # middle of the overlap of k-1, k
        borders.append(middle if scale == 1.0 else round(middle * scale))
    borders.append(raster_size)
    chunks = []
    for a, b in itertools.pairwise(borders):
        if scale == 1.0:
            lo, hi = a, b - 1
        else:
            lo = math.floor(_work_index(a, scale))
            hi = math.floor(_work_index(b - 1, scale)) + 1
        lo = max(0, lo - _MARGIN_WORK_PX)
        hi = min(work_size - 1, hi + _MARGIN_WORK_PX)
        first = next(i for i, t in enumerate(starts) if t + tile_px > lo)
        last = max(i for i, t in enumerate(starts) if t <= hi)
        span = (starts[first], min(starts[last] + tile_px, work_size))
        chunks.append(AxisChunk((a, b), span))
    return chunks


def plan_raster(
    info: RasterInfo,
    gsd: float | None,
    tile_px: int,
    overlap_px: int,
    chunk_tiles: int,
) -> list[ChunkWindow]:
    """Chunks of a whole raster, row-major.

    Args:
        info: The raster (``backend.geo.raster.raster_info``).
        gsd: Working ground resolution (m/px) the run uses, None = native.
        tile_px: The run's tile size (working pixels).
        overlap_px: The run's tile overlap (working pixels).
        chunk_tiles: Model tiles per chunk along each axis.
    """
    from ..pipeline.grid import _plan

    plan = _plan(info, info.full_window, gsd, tile_px, overlap_px)
    rows = axis_chunks(
        info.height,
        plan.work_rows[1],
        scale=plan.scale_y,
        tile_px=tile_px,
        overlap_px=overlap_px,
        chunk_tiles=chunk_tiles,
    )
    cols = axis_chunks(
        info.width,
        plan.work_cols[1],
        scale=plan.scale_x,
        tile_px=tile_px,
        overlap_px=overlap_px,
        chunk_tiles=chunk_tiles,
    )
    if len(rows) == 1 and len(cols) == 1:
        return [ChunkWindow((0, 0, info.height, info.width), None)]
    return [
        ChunkWindow(
            (r.core[0], c.core[0], r.core[1] - r.core[0], c.core[1] - c.core[0]), (r.span, c.span)
        )
        for r in rows
        for c in cols
    ]
