"""The working grid: where tiles go (``_Plan``) and how finished rows return to raster pixels."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..geo.tiling import expand_span, linear_map, source_span

if TYPE_CHECKING:
    from ..geo.raster import PixelWindow, RasterInfo

logger = logging.getLogger(__name__)

_SCALE_SNAP = 5e-3  # working/native GSD ratios within 0.5 % of 1 are treated as native


@dataclass(frozen=True)
class _Plan:
    """Where the working grid, the processed span and the output window are (all absolute)."""

    scale_y: float
    scale_x: float
    work_rows: tuple[int, int]  # processing span on the working grid
    work_cols: tuple[int, int]
    tile_px: int
    overlap_px: int


def _plan(
    info: RasterInfo,
    window: PixelWindow,
    gsd: float | None,
    tile_px: int,
    overlap_px: int,
    *,
    span: tuple[tuple[int, int], tuple[int, int]] | None = None,
) -> _Plan:
    """Working grid and processing span of ``window``; ``span`` forces the span (checked)."""
    if gsd is None:
        scale_x = scale_y = 1.0
    else:
        scale_x = gsd / info.res_m[0]
        scale_y = gsd / info.res_m[1]
        scale_x = 1.0 if abs(scale_x - 1.0) < _SCALE_SNAP else scale_x
        scale_y = 1.0 if abs(scale_y - 1.0) < _SCALE_SNAP else scale_y
        if min(scale_x, scale_y) < 0.25:
            logger.warning(
                "working GSD %.3g m is %.1fx finer than the raster (%.3g m): the extent is "
                "upsampled and costs %.0fx more model time",
                gsd,
                1 / min(scale_x, scale_y),
                min(info.res_m),
                1 / (scale_x * scale_y),
            )
    work_h = max(1, math.floor(info.height / scale_y + 1e-9))
    work_w = max(1, math.floor(info.width / scale_x + 1e-9))
    rows = source_span(window.row_off, window.row_stop, scale=scale_y, src_size=work_h)
    cols = source_span(window.col_off, window.col_stop, scale=scale_x, src_size=work_w)
    if scale_y == 1.0:
        rows = (window.row_off, window.row_stop)
    if scale_x == 1.0:
        cols = (window.col_off, window.col_stop)
    if span is not None:
        (a, b), (c, d) = span
        if not (0 <= a <= rows[0] and rows[1] <= b <= work_h):
            raise ValueError(f"work span rows {span[0]} do not contain {rows} within {work_h}")
        if not (0 <= c <= cols[0] and cols[1] <= d <= work_w):
            raise ValueError(f"work span cols {span[1]} do not contain {cols} within {work_w}")
        return _Plan(scale_y, scale_x, (a, b), (c, d), tile_px, overlap_px)
    rows = expand_span(*rows, min_size=tile_px, limit=work_h)
    cols = expand_span(*cols, min_size=tile_px, limit=work_w)
    return _Plan(scale_y, scale_x, rows, cols, tile_px, overlap_px)


class _RowResampler:
    """Turns finished working-grid rows into raster-grid probability strips (bilinear).

    Working rows arrive top to bottom in blocks; each call yields the raster rows of the
    output window that can already be computed, in strips of at most ``strip_rows`` rows.
    Only one or two working rows are kept between calls (the interpolation halo).
    """

    def __init__(self, plan: _Plan, window: PixelWindow, strip_rows: int) -> None:
        self.plan = plan
        self.window = window
        self.strip_rows = strip_rows
        p0, p1 = plan.work_rows
        q0, q1 = plan.work_cols
        self.rows = linear_map(
            window.row_off, window.row_stop, scale=plan.scale_y, src_start=p0, src_stop=p1
        )
        self.cols = (
            None
            if plan.scale_x == 1.0
            else linear_map(
                window.col_off, window.col_stop, scale=plan.scale_x, src_start=q0, src_stop=q1
            )
        )
        self.col_slice = slice(window.col_off - q0, window.col_stop - q0)
        self.next = 0  # next output row, relative to window.row_off
        self.halo: np.ndarray | None = None
        self.halo_start = 0  # working row (relative to p0) of halo[0]

    def push(
        self, block: np.ndarray, first: int, *, last: bool
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Feed working rows ``[first, first + len(block))`` (relative to the processing span).

        Yields:
            ``(raster_row, prob)`` with ``prob`` ``(n, window.width)`` float32.
        """
        n_out = self.window.height
        stop_avail = first + block.shape[0]
        if self.plan.scale_y == 1.0:
            offset = self.plan.work_rows[0] - self.window.row_off  # raster row = working row + p0
            lo = max(self.next, first + offset)
            hi = min(n_out, stop_avail + offset)
            for start in range(lo, hi, self.strip_rows):
                stop = min(start + self.strip_rows, hi)
                rows = block[start - offset - first : stop - offset - first]
                yield self.window.row_off + start, self._columns(rows)
            self.next = max(self.next, hi)
            return
        hi_idx = self.rows.hi
        ready = n_out if last else int(np.searchsorted(hi_idx, stop_avail, side="left"))
        for start in range(self.next, ready, self.strip_rows):
            stop = min(start + self.strip_rows, ready)
            lo_rows = self._gather(self.rows.lo[start:stop], block, first)
            hi_rows = self._gather(self.rows.hi[start:stop], block, first)
            frac = self.rows.frac[start:stop, None]
            hi_rows -= lo_rows
            hi_rows *= frac
            lo_rows += hi_rows
            yield self.window.row_off + start, self._columns(lo_rows)
        self.next = max(self.next, ready)
        # keep the rows that later output rows may still need (usually one)
        keep_from = int(self.rows.lo[self.next]) if self.next < n_out else stop_avail
        keep_from = min(keep_from, stop_avail)
        if keep_from >= first:
            self.halo = block[keep_from - first :].copy()
        elif self.halo is not None:
            self.halo = np.concatenate([self.halo[keep_from - self.halo_start :], block])
        else:
            self.halo = block.copy()
        self.halo_start = keep_from

    def _gather(self, index: np.ndarray, block: np.ndarray, first: int) -> np.ndarray:
        out = np.empty((index.size, block.shape[1]), dtype=np.float32)
        in_block = index >= first
        out[in_block] = block[index[in_block] - first]
        if not in_block.all():
            if self.halo is None:
                raise RuntimeError("row resampler lost its halo")  # pragma: no cover
            out[~in_block] = self.halo[index[~in_block] - self.halo_start]
        return out

    def _columns(self, rows: np.ndarray) -> np.ndarray:
        if self.cols is None:
            return rows[:, self.col_slice]
        left = rows[:, self.cols.lo]
        right = rows[:, self.cols.hi]
        right -= left
        right *= self.cols.frac[None, :]
        left += right
        return left
