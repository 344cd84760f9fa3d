"""Pure index arithmetic for tiling, blending and grid resampling (numpy only, no I/O).

Conventions: pixel ``(row, col)`` covers ``[row, row + 1) x [col, col + 1)`` in pixel space, its
centre is at ``row + 0.5``. A *working grid* is the raster's pixel grid scaled by ``scale``
raster pixels per working pixel and anchored at the raster's pixel ``(0, 0)`` corner, so the
working pixels are the same whatever part of the raster is processed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AxisBlend",
    "LinearMap",
    "Tile",
    "axis_blend",
    "expand_span",
    "iter_tiles",
    "linear_map",
    "mirror_pad",
    "source_span",
    "tile_starts",
]


@dataclass(frozen=True)
class Tile:
    """A pixel window of a grid: rows ``[row_off, row_off + height)``, same for columns."""

    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index an ``(H, W, ...)`` array with ``array[tile.slices]``."""
        return (
            slice(self.row_off, self.row_off + self.height),
            slice(self.col_off, self.col_off + self.width),
        )


def tile_starts(size: int, *, tile_px: int, overlap_px: int) -> list[int]:
    """Start offsets of tiles covering ``[0, size)`` on one axis.

    Tiles advance by ``tile_px - overlap_px``; the last tile is pulled back inside the axis
    rather than padded, so every tile is full-size whenever ``size >= tile_px``.

    Raises:
        ValueError: If ``size < 1`` or ``overlap_px`` is negative or not smaller than ``tile_px``.
    """
    if not 0 <= overlap_px < tile_px:
        raise ValueError(
            f"need 0 <= overlap_px < tile_px, got overlap_px={overlap_px}, tile_px={tile_px}"
        )
    if size < 1:
        raise ValueError(f"need size >= 1, got {size}")
    stride = tile_px - overlap_px
    last = max(size - tile_px, 0)
    return sorted({*range(0, last, stride), last})


def iter_tiles(height: int, width: int, *, tile_px: int, overlap_px: int) -> Iterator[Tile]:
    """Cover a ``height x width`` grid with squares of ``tile_px`` overlapping by ``overlap_px``.

    Tiles come row by row (row-major). See :func:`tile_starts` for the placement rule.
    """
    rows = tile_starts(height, tile_px=tile_px, overlap_px=overlap_px)
    cols = tile_starts(width, tile_px=tile_px, overlap_px=overlap_px)
    for row in rows:
        for col in cols:
            yield Tile(row, col, min(tile_px, height - row), min(tile_px, width - col))


@dataclass(frozen=True)
class AxisBlend:
    """Blend weights of the tiles along one axis.

    Attributes:
        starts: Tile start offsets, ascending.
        weights: One ``(length_i,)`` float32 ramp per tile.
        total: ``(size,)`` float32, the sum of all tiles' weights at each position (> 0).
        keys: Per tile ``(length, ramp_in, ramp_out)``: tiles with equal keys have equal
            weights (lets the caller cache 2-D weights).
    """

    starts: list[int]
    weights: list[np.ndarray]
    total: np.ndarray
    keys: list[tuple[int, int, int]]


def _ramp(n: int) -> np.ndarray:
    """``(n,)`` float32 rising smoothly from near 0 to near 1 (raised cosine, sin^2)."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    return (np.sin(0.5 * np.pi * t) ** 2).astype(np.float32)


def axis_blend(size: int, *, tile_px: int, overlap_px: int) -> AxisBlend:
    """Raised-cosine blend weights for the tiles of one axis.

    Inside a tile the weight is 1; where two neighbouring tiles overlap, one ramps down while
    the other ramps up (``sin^2`` and ``cos^2`` of the same angle, so they sum to 1). Ramps
    are strictly positive, and the outer edges of the first and last tiles are not ramped, so
    every position has a positive total weight. The 2-D weight of tile ``(i, j)`` is
    ``rows.weights[i][:, None] * cols.weights[j][None, :]`` and the 2-D total is the outer
    product of the two totals, so stitched = sum(w * p) / (rows.total x cols.total).
    """
    starts = tile_starts(size, tile_px=tile_px, overlap_px=overlap_px)
    weights: list[np.ndarray] = []
    keys: list[tuple[int, int, int]] = []
    total = np.zeros(size, dtype=np.float32)
    for k, start in enumerate(starts):
        length = min(tile_px, size - start)
        w = np.ones(length, dtype=np.float32)
        ramp_in = max(starts[k - 1] + tile_px - start, 0) if k > 0 else 0
        ramp_out = max(start + tile_px - starts[k + 1], 0) if k + 1 < len(starts) else 0
        if ramp_in:
            w[:ramp_in] *= _ramp(ramp_in)
        if ramp_out:
            w[length - ramp_out :] *= _ramp(ramp_out)[::-1]
        weights.append(w)
        keys.append((length, ramp_in, ramp_out))
        total[start : start + length] += w
    return AxisBlend(starts=starts, weights=weights, total=total, keys=keys)


def expand_span(start: int, stop: int, *, min_size: int, limit: int) -> tuple[int, int]:
    """Grow ``[start, stop)`` symmetrically to at least ``min_size``, staying inside ``[0, limit)``.

    Used to give a small extent the context of a whole model tile.
    """
    target = min(min_size, limit)
    if stop - start >= target:
        return start, stop
    grow = target - (stop - start)
    new_start = max(0, start - grow // 2)
    new_stop = min(limit, new_start + target)
    return new_stop - target, new_stop


def mirror_pad(image: np.ndarray, size: int) -> np.ndarray:
    """Grow ``image`` ``(H, W, ...)`` to ``(size, size, ...)`` by mirroring it at its bottom/right.

    Used when the whole working grid is smaller than one model tile. The added rows and
    columns are real pixels reflected about the last row/column (``numpy.pad`` mode
    ``"reflect"``, repeated as often as needed), so the model never sees an artificial
    border: zero (black) padding reads as dark water or shadow to a model trained on whole
    images and produced false strips along the raster's bottom and right edges.

    Raises:
        ValueError: If ``image`` is already larger than ``size`` on an axis.
    """
    h, w = image.shape[:2]
    if h > size or w > size:
        raise ValueError(f"image {h}x{w} is larger than the tile size {size}")
    if h == size and w == size:
        return image
    widths = [(0, size - h), (0, size - w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="reflect")


@dataclass(frozen=True)
class LinearMap:
    """Linear interpolation from a source axis to destination pixel centres.

    ``dst[k] = (1 - frac[k]) * src[lo[k]] + frac[k] * src[hi[k]]``; indices are relative to
    the source span given to :func:`linear_map`.
    """

    lo: np.ndarray  # (n,) int64
    hi: np.ndarray  # (n,) int64
    frac: np.ndarray  # (n,) float32


def linear_map(
    dst_start: int, dst_stop: int, *, scale: float, src_start: int, src_stop: int
) -> LinearMap:
    """Map destination pixels ``[dst_start, dst_stop)`` onto a source grid ``scale`` times coarser.

    The source pixel ``i`` covers destination coordinates ``[i * scale, (i + 1) * scale)``
    (both grids share the origin), so the centre of destination pixel ``x`` sits at source
    coordinate ``(x + 0.5) / scale - 0.5``. Coordinates outside ``[src_start, src_stop - 1]``
    are clamped (edge replication).

    Args:
        dst_start: First destination pixel (inclusive).
        dst_stop: Last destination pixel (exclusive).
        scale: Destination pixels per source pixel (> 0).
        src_start: First available source pixel (absolute index).
        src_stop: One past the last available source pixel (absolute index).
    """
    x = np.arange(dst_start, dst_stop, dtype=np.float64)
    u = np.clip((x + 0.5) / scale - 0.5, src_start, src_stop - 1)
    lo = np.floor(u).astype(np.int64)
    hi = np.minimum(lo + 1, src_stop - 1)
    frac = (u - lo).astype(np.float32)
    return LinearMap(lo=lo - src_start, hi=hi - src_start, frac=frac)


def source_span(dst_start: int, dst_stop: int, *, scale: float, src_size: int) -> tuple[int, int]:
    """Source pixels ``[lo, hi)`` that :func:`linear_map` reads for ``[dst_start, dst_stop)``."""
    first = (dst_start + 0.5) / scale - 0.5
    last = (dst_stop - 0.5) / scale - 0.5
    lo = min(max(math.floor(first), 0), src_size - 1)
    hi = min(max(math.floor(last) + 2, lo + 1), src_size)
    return lo, hi
