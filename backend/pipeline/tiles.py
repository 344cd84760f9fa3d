"""Step 3 of the run: cover the working span with tiles, read each (ahead), predict, blend.

:func:`tile_layout` decides the tiles once from the plan; :func:`predict_tiles` reads,
predicts and blends them tile row by tile row into an accumulator that holds one tile row of
the working span, and hands each band of working rows that no later tile touches (already
normalised) to step 4, which resamples and vectorises it. Reading runs a batch ahead of the
model and blending (with step 4) a batch behind it, each in a helper thread, when the
segmenter wants it (:func:`wants_read_ahead`). numpy only; the reader is a
:class:`~backend.geo.tile_reader.TileReader` behind :class:`LockedReader`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import Cancelled
from ..geo.tiling import AxisBlend, axis_blend, mirror_pad
from ..types import CancelFn, SegmenterLike
from .blend import _accumulate, _check_prob, _runs, _shift_up

if TYPE_CHECKING:
    from ..geo.raster import PixelWindow
    from ..geo.tile_reader import TileReader
    from .clicks import TileClicks
    from .plan import RunPlan

TileBox = tuple[int, int, int, int]
"""A tile's ``(row, col, height, width)`` on the working grid (absolute; real pixels only)."""

Batch = tuple[int, tuple[tuple[int, int], ...]]
"""``(tile row i, ((tile column j, column start), ...))``: tiles predicted in one call."""


@dataclass(frozen=True)
class TileLayout:
    """Where the tiles of a run are and how they are batched (decided once per run).

    Attributes:
        rows, cols: Tile starts and blend ramps along each axis of the processing span.
        batches: The tiles in prediction order, ``batch_size`` tiles of one row at most.
    """

    rows: AxisBlend
    cols: AxisBlend
    batches: tuple[Batch, ...]

    @property
    def n_tiles(self) -> int:
        """Model tiles of the run."""
        return len(self.rows.starts) * len(self.cols.starts)


def tile_layout(plan: RunPlan, batch_size: int) -> TileLayout:
    """The tiles of ``plan``'s processing span, in batches of at most ``batch_size``."""
    (p0, p1), (q0, q1) = plan.grid.work_rows, plan.grid.work_cols
    rows = axis_blend(p1 - p0, tile_px=plan.tile_px, overlap_px=plan.overlap_px)
    cols = axis_blend(q1 - q0, tile_px=plan.tile_px, overlap_px=plan.overlap_px)
    jobs = tuple(enumerate(cols.starts))
    batches = tuple(
        (i, jobs[a : a + batch_size])
        for i in range(len(rows.starts))
        for a in range(0, len(jobs), batch_size)
    )
    return TileLayout(rows=rows, cols=cols, batches=batches)


class LockedReader:
    """A tile reader whose dataset access is serialised (the read-ahead thread shares it)."""

    def __init__(self, reader: TileReader) -> None:
        self._reader = reader
        self._lock = threading.Lock()

    def read_rgb(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """``(height, width, 3)`` uint8 of the working grid at ``(row, col)``."""
        with self._lock:
            image, _ = self._reader.read_rgb(row, col, height, width)
        return image

    def read_valid(self, strip: PixelWindow) -> np.ndarray | None:
        """``(h, w)`` bool of the valid raster pixels of ``strip``, or None when all are."""
        with self._lock:
            return self._reader.read_valid(strip)


class TileProgress:
    """Tiles done so far; checks the user's cancel and reports after each batch."""

    def __init__(
        self,
        n_tiles: int,
        is_cancelled: CancelFn | None,
        on_done: Callable[[int, int], None],
    ) -> None:
        self.n_tiles = n_tiles
        self.done = 0
        self._is_cancelled = is_cancelled
        self._on_done = on_done

    def check_cancel(self) -> None:
        """Raise :class:`Cancelled` when the user asked to stop."""
        if self._is_cancelled is not None and self._is_cancelled():
            raise Cancelled(f"cancelled by the user after {self.done} of {self.n_tiles} tiles")

    def advance(self, tiles: int) -> None:
        """``tiles`` more are predicted and blended."""
        self.done += tiles
        self._on_done(self.done, self.n_tiles)


RowsFn = Callable[[np.ndarray, int, bool], None]
"""``(block, first, is_last)``: a band of finished working rows (see :func:`predict_tiles`)."""


def predict_tiles(
    reader: LockedReader,
    plan: RunPlan,
    layout: TileLayout,
    predict: Callable[[list[np.ndarray], list[TileBox]], list[np.ndarray]],
    progress: TileProgress,
    timings: dict[str, float],
    on_rows: RowsFn,
    *,
    read_ahead: bool = True,
    blend_behind: bool = False,
) -> None:
    """Predict every tile, blend, and hand each band of finished working rows to ``on_rows``.

    Args:
        reader: Reads ``(h, w, 3)`` uint8 tiles of the working grid.
        plan: The run's plan (processing span, tile size).
        layout: The tiles (:func:`tile_layout`).
        predict: ``(images, boxes) -> probabilities`` of one batch (the segmenter call);
            ``boxes`` are the tiles' ``(row, col, height, width)`` on the working grid.
        progress: Cancel check and progress after each batch.
        timings: ``read``, ``model`` and ``blend`` seconds are added here.
        on_rows: Called top to bottom with ``(block, first, is_last)``: ``block`` ``(n, span
            width)`` float32 blended probabilities of working rows ``[first, first + n)``
            (relative to the span), a view of the accumulator valid during the call.
        read_ahead: Read the next batch in a thread while the current one is predicted.
        blend_behind: Blend each batch and call ``on_rows`` in a helper thread while the model
            predicts the next batch (the model stays on the calling thread; the blending is
            done in the same order, so the results are the same). An error there is raised
            here after the model call in flight.
    """
    tile_px = plan.tile_px
    (p0, p1), (q0, _) = plan.grid.work_rows, plan.grid.work_cols
    rows, cols, batches = layout.rows, layout.cols, layout.batches
    scratch = np.empty((tile_px, tile_px), dtype=np.float32)
    # complementary ramps sum to 1: only positions where 3+ tiles meet need normalising
    row_fix = _runs(np.abs(rows.total - 1.0) > 1e-6)
    col_fix = _runs(np.abs(cols.total - 1.0) > 1e-6)
    acc = np.zeros((min(tile_px, p1 - p0), cols.total.size), dtype=np.float32)
    acc_top = [0]  # processing-span row of acc[0] (only the blending thread changes it)

    def read_batch(k: int) -> list[np.ndarray]:
        i, batch = batches[k]
        height = rows.weights[i].size
        images = []
        for j, col in batch:
            width = cols.weights[j].size
            image = reader.read_rgb(p0 + rows.starts[i], q0 + col, height, width)
            if height < tile_px or width < tile_px:  # grid smaller than a tile
                image = mirror_pad(image, tile_px)  # real pixels, never a black border
            images.append(image)
        return images

    def blend(i: int, batch: tuple[tuple[int, int], ...], probs: list[Any]) -> None:
        t0 = time.perf_counter()
        row, row_w, height, top = rows.starts[i], rows.weights[i], rows.weights[i].size, acc_top[0]
        for (j, col), prob in zip(batch, probs, strict=True):
            prob = _check_prob(prob, tile_px)
            col_w = cols.weights[j]
            _accumulate(
                acc[row - top : row - top + height, col : col + col_w.size],
                prob[:height, : col_w.size],
                (row_w, rows.keys[i]),
                (col_w, cols.keys[j]),
                scratch,
            )
        timings["blend"] += time.perf_counter() - t0

    def finish_row(i: int) -> None:
        # rows that no later tile touches are final: normalise and hand them on
        is_last = i + 1 == len(rows.starts)
        top = acc_top[0]
        final_stop = (p1 - p0) if is_last else rows.starts[i + 1]
        t0 = time.perf_counter()
        block = acc[: final_stop - top]
        for a, b in row_fix:  # in place, slice by slice: no temporary copy of the block
            a, b = max(a, top), min(b, final_stop)
            if a < b:
                block[a - top : b - top] /= rows.total[a:b, None]
        for a, b in col_fix:
            block[:, a:b] /= cols.total[None, a:b]
        timings["blend"] += time.perf_counter() - t0
        on_rows(block, top, is_last)
        if not is_last:
            _shift_up(acc, final_stop - top)
            acc_top[0] = final_stop

    reads = _Reads(read_batch, len(batches), read_ahead)
    behind = _Behind(blend_behind)
    k = 0
    try:
        for i, row in enumerate(rows.starts):
            height = rows.weights[i].size
            while k < len(batches) and batches[k][0] == i:
                batch = batches[k][1]
                progress.check_cancel()
                t0 = time.perf_counter()
                images = reads.get(k)
                k += 1
                t1 = time.perf_counter()
                probs = predict(images, [(p0 + row, q0 + col, height, cols.weights[j].size)
                                         for j, col in batch])  # fmt: skip
                timings["read"] += t1 - t0
                timings["model"] += time.perf_counter() - t1
                behind.run(blend, i, batch, probs)
                progress.advance(len(batch))
            behind.run(finish_row, i)
        behind.wait()
    finally:
        behind.close()
        reads.close()  # no read may outlive the open dataset


class _Behind:
    """Runs blending jobs in order, inline or in one helper thread at most one job behind."""

    def __init__(self, threaded: bool) -> None:
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="rs2sam-blend")
            if threaded
            else None
        )
        self._last: Future[None] | None = None

    def run(self, job: Callable[..., None], *args: Any) -> None:
        """Run ``job(*args)`` once the previous job has ended (raises that job's error).

        Threaded, it returns at once: the job runs while the caller predicts the next batch,
        and at most one job (one batch of probabilities) is ever waiting.
        """
        if self._pool is None:
            job(*args)
            return
        self.wait()
        self._last = self._pool.submit(job, *args)

    def wait(self) -> None:
        """Wait for the jobs submitted so far; raise the first error of one."""
        if self._last is not None:
            last, self._last = self._last, None
            last.result()

    def close(self) -> None:
        """Let the job in flight end (it may hold a view of the accumulator)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class _Reads:
    """Batch ``k``'s images, read in a helper thread one batch ahead (or inline)."""

    def __init__(self, read: Callable[[int], list[np.ndarray]], n: int, ahead: bool) -> None:
        self._read = read
        self._n = n
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="rs2sam-read") if ahead else None
        )
        self._next: Future[list[np.ndarray]] | None = None
        if self._pool is not None and n:
            self._next = self._pool.submit(read, 0)

    def get(self, k: int) -> list[np.ndarray]:
        """The images of batch ``k`` (batches are asked for in order)."""
        if self._pool is None:
            return self._read(k)
        images = self._next.result()  # type: ignore[union-attr]
        self._next = self._pool.submit(self._read, k + 1) if k + 1 < self._n else None
        return images

    def close(self) -> None:
        """Stop reading ahead and wait for a read in flight."""
        if self._pool is None:
            return
        if self._next is not None:
            self._next.cancel()
        self._pool.shutdown(wait=True)


def wants_read_ahead(segmenter: SegmenterLike) -> bool:
    """Whether to read the next tiles, and blend the last ones, while ``segmenter`` predicts.

    The segmenter's own ``read_ahead`` attribute decides when it has one (True / False);
    otherwise it is on unless the model's device type is in :data:`READ_INLINE_ON`. Measured
    (``python -m bench.coldstart``, 2 shared cores, fresh process, 100 Mpx, s/Mpx outside the
    model, read-ahead on / off, before blending moved behind the model too): sleeping stand-in
    (a GPU model: the cores are free) 0.041 / 0.134, busy-cores stand-in (a CPU model) 0.037 /
    0.108; at 16 Mpx 0.109 / 0.208 and 0.105 / 0.204. Working beside the model pays on both, so
    no device works inline today (docs/benchmarks.md has the newer figures).
    """
    explicit = getattr(segmenter, "read_ahead", None)
    if explicit is not None:
        return bool(explicit)
    device = getattr(segmenter, "device", None)
    kind = str(getattr(device, "type", device) or "").split(":")[0]
    return kind not in READ_INLINE_ON


READ_INLINE_ON: frozenset[str] = frozenset()
"""Device types whose models get their tiles read inline (no read-ahead thread); empty: the
read-ahead thread paid with a busy CPU model too (see :func:`wants_read_ahead`)."""


def batch_predictor(
    segmenter: SegmenterLike, model_text: str, batch_size: int, clicks: TileClicks | None = None
) -> Callable[[list[np.ndarray], list[TileBox]], list[Any]]:
    """``(images, boxes) -> probabilities``: ``predict_batch`` for batches when available.

    A tile that holds clicks is predicted on its own with them (``predict_clicks``).
    """
    predict_batch = getattr(segmenter, "predict_batch", None) if batch_size > 1 else None

    def plain(images: list[np.ndarray]) -> list[Any]:
        if predict_batch is not None and len(images) > 1:
            return list(predict_batch(np.stack(images), model_text))
        return [segmenter.predict(image, model_text) for image in images]

    def predict(images: list[np.ndarray], boxes: list[TileBox]) -> list[Any]:
        local = [clicks.in_tile(*box) if clicks else [] for box in boxes]
        if not any(local):
            return plain(images)
        return [
            segmenter.predict_clicks(image, model_text, here)  # type: ignore[attr-defined]
            if here
            else plain([image])[0]
            for image, here in zip(images, local, strict=True)
        ]

    return predict
