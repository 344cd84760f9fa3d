"""Step 4 of the run: finished working rows -> raster-grid strips -> polygon pieces.

:class:`StripVectoriser` takes the blended working rows that step 3 yields, resamples them to
the raster grid (:class:`~backend.pipeline.grid._RowResampler`), zeroes nodata and pixels
outside the AOI, thresholds, and vectorises strip by strip; pieces that meet at strip seams
are unioned (:class:`~backend.geo.vectorize.SeamMerger`). Memory depends on the extent's
width, never on its area.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .grid import _RowResampler

if TYPE_CHECKING:
    from .options import _Options
    from .plan import RunPlan
    from .tiles import LockedReader


class StripVectoriser:
    """Vectorises a run's probabilities as its working rows arrive, top to bottom.

    Attributes:
        finished: Polygon pieces (pixel coordinates) that can no longer grow.
        counts: Pixel counts of the run: ``window``, ``working``, ``valid``, ``positive``.
    """

    def __init__(
        self,
        plan: RunPlan,
        reader: LockedReader,
        options: _Options,
        timings: dict[str, float],
    ) -> None:
        self.plan = plan
        self.window = plan.window
        self.reader = reader
        self.threshold = options.threshold
        self.timings = timings
        self.resampler = _RowResampler(plan.grid, plan.window, options.strip_rows)
        self.merger: Any = None  # made at the first strip: vectorize imports shapely
        self.finished: list[Any] = []
        (p0, p1), (q0, q1) = plan.grid.work_rows, plan.grid.work_cols
        area = self.window.height * self.window.width
        self.counts = {"window": area, "working": (p1 - p0) * (q1 - q0), "valid": area}
        self.counts["positive"] = 0

    def push(self, block: np.ndarray, first: int, *, last: bool) -> None:
        """Vectorise what working rows ``[first, first + len(block))`` complete."""
        for raster_row, prob in self.resampler.push(block, first, last=last):
            self._strip(raster_row, prob)

    def close(self) -> list[Any]:
        """The finished pieces, once every row has been pushed."""
        if not self.resampler.next >= self.window.height:  # pragma: no cover - an invariant
            raise RuntimeError("pipeline streaming ended before the last row of the window")
        return self.finished

    def _strip(self, raster_row: int, prob: np.ndarray) -> None:
        from ..geo.raster import PixelWindow
        from ..geo.vectorize import SeamMerger, strip_pieces

        t0 = time.perf_counter()
        if self.merger is None:
            self.merger = SeamMerger()
        window = self.window
        strip = PixelWindow(raster_row, window.col_off, prob.shape[0], window.width)
        valid = self.reader.read_valid(strip)
        if self.plan.aoi_px is not None:
            from ..geo.aoi import aoi_strip_mask  # imports pyproj: only when there is an AOI

            inside = aoi_strip_mask(self.plan.aoi_px, strip.row_off, strip.col_off, *prob.shape)
            valid = inside if valid is None else valid & inside
        if valid is not None:
            prob[~valid] = 0.0
            self.counts["valid"] -= int(valid.size - np.count_nonzero(valid))
        mask = prob >= self.threshold
        self.counts["positive"] += int(np.count_nonzero(mask))
        pieces = strip_pieces(mask, prob, raster_row, window.col_off)
        last = strip.row_stop >= window.row_stop
        self.finished.extend(
            self.merger.add_strip(pieces, strip.row_off, strip.row_stop, last=last)
        )
        self.timings["vectorize"] += time.perf_counter() - t0
