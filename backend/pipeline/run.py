"""The streaming run over one open raster: read, predict, blend, vectorise, write."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import Cancelled
from ..geo.tiling import axis_blend, mirror_pad
from ..text.lexicon import Interpretation, interpret
from ..types import CancelFn, ProgressFn, SegmenterLike, StageFn
from .blend import _accumulate, _check_prob, _runs, _shift_up
from .grid import _Plan, _RowResampler
from .options import _Options
from .plan import make_plan
from .result import FIELDS, SegmentResult

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

    from ..geo.raster import PixelWindow, RasterInfo

logger = logging.getLogger(__name__)


def _run(
    dataset: DatasetReader,
    options: _Options,
    segmenter: SegmenterLike,
    *,
    bbox: Sequence[float] | None,
    bbox_crs: Any,
    out_path: str | os.PathLike[str] | None,
    assume_crs: Any,
    progress: ProgressFn | None,
    is_cancelled: CancelFn | None,
    source_name: str | None,
    aoi: Any = None,
    aoi_crs: Any = None,
    allow_large: bool = False,
    stage: StageFn | None = None,
    window: PixelWindow | None = None,
    work_span: tuple[tuple[int, int], tuple[int, int]] | None = None,
) -> SegmentResult:
    """Segment one open raster (see :func:`~backend.pipeline.segment_raster`).

    ``window`` (raster pixels, instead of ``bbox``) and ``work_span`` (working-grid rows and
    columns ``((p0, p1), (q0, q1))`` to tile, instead of the window's own span) let a caller
    process one chunk of a large raster with exactly the tiles, blend weights and resampling of
    a whole-raster run (``backend.batch`` does). Both default to the normal behaviour.
    """
    from ..geo.aoi import aoi_strip_mask
    from ..geo.radiometry import compute_stretch
    from ..geo.raster import PixelWindow
    from ..geo.tile_reader import TileReader
    from ..geo.vectorize import SeamMerger, geodesic_areas_m2, pixel_to_map, strip_pieces

    report_stage = stage or (lambda _name, _done, _total: None)
    report_stage("read", 0, 0)
    t_start = time.perf_counter()
    prompt = _interpret_prompt(segmenter, options.text)
    model_text = prompt.model_text
    timings = dict.fromkeys(("read", "model", "blend", "vectorize", "attributes", "write"), 0.0)
    run_plan = make_plan(
        dataset,
        options,
        segmenter,
        bbox=bbox,
        bbox_crs=bbox_crs,
        assume_crs=assume_crs,
        source_name=source_name,
        aoi=aoi,
        aoi_crs=aoi_crs,
        allow_large=allow_large,
        window=window,
        work_span=work_span,
        concepts=prompt.concepts,
    )
    info, window, bands, plan = run_plan.info, run_plan.window, run_plan.bands, run_plan.grid
    tile_px, overlap_px, gsd, aoi_px = (
        run_plan.tile_px,
        run_plan.overlap_px,
        run_plan.gsd_m,
        run_plan.aoi_px,
    )
    bbox, bbox_crs = run_plan.bbox, run_plan.bbox_crs
    stretch = compute_stretch(dataset, bands, mode=options.stretch, has_mask=info.has_mask)
    reader = TileReader(
        dataset,
        bands,
        stretch,
        scale_y=plan.scale_y,
        scale_x=plan.scale_x,
        has_mask=info.has_mask,
    )
    p0, p1 = plan.work_rows
    q0, q1 = plan.work_cols
    rows_blend = axis_blend(p1 - p0, tile_px=tile_px, overlap_px=overlap_px)
    cols_blend = axis_blend(q1 - q0, tile_px=tile_px, overlap_px=overlap_px)
    n_tiles = len(rows_blend.starts) * len(cols_blend.starts)
    logger.info(
        "%s: window %s, scale %.3g x %.3g, working span %s x %s, %d tiles of %d px",
        info.name,
        window,
        plan.scale_y,
        plan.scale_x,
        plan.work_rows,
        plan.work_cols,
        n_tiles,
        tile_px,
    )
    predict_batch = getattr(segmenter, "predict_batch", None) if options.batch_size > 1 else None

    scratch = np.empty((tile_px, tile_px), dtype=np.float32)
    # complementary ramps sum to 1: only positions where 3+ tiles meet need normalising
    row_fix = _runs(np.abs(rows_blend.total - 1.0) > 1e-6)
    col_fix = _runs(np.abs(cols_blend.total - 1.0) > 1e-6)
    buffer_rows = min(tile_px, p1 - p0)
    acc = np.zeros((buffer_rows, q1 - q0), dtype=np.float32)
    acc_top = 0  # processing-span row of acc[0]
    resampler = _RowResampler(plan, window, options.strip_rows)
    merger = SeamMerger()
    finished: list[Any] = []
    counts = {"window": window.height * window.width, "working": (p1 - p0) * (q1 - q0)}
    counts["valid"] = counts["window"]
    counts["positive"] = 0
    done = 0

    io_lock = threading.Lock()

    def check_cancel() -> None:
        if is_cancelled is not None and is_cancelled():
            raise Cancelled(f"cancelled by the user after {done} of {n_tiles} tiles")

    def vectorize_strip(raster_row: int, prob: np.ndarray) -> None:
        t0 = time.perf_counter()
        strip = PixelWindow(raster_row, window.col_off, prob.shape[0], window.width)
        with io_lock:  # the prefetch thread may be reading the same dataset
            valid = reader.read_valid(strip)
        if aoi_px is not None:
            inside = aoi_strip_mask(aoi_px, strip.row_off, strip.col_off, *prob.shape)
            valid = inside if valid is None else valid & inside
        if valid is not None:
            prob[~valid] = 0.0
            counts["valid"] -= int(valid.size - np.count_nonzero(valid))
        mask = prob >= options.threshold
        counts["positive"] += int(np.count_nonzero(mask))
        pieces = strip_pieces(mask, prob, raster_row, window.col_off)
        last = strip.row_stop >= window.row_stop
        finished.extend(merger.add_strip(pieces, strip.row_off, strip.row_stop, last=last))
        timings["vectorize"] += time.perf_counter() - t0

    # reading overlaps the model: the next batch of tiles is read (one batch ahead, in one
    # thread) while the current one is predicted; dataset access is serialised by io_lock
    batches = [
        (i, jobs)
        for i in range(len(rows_blend.starts))
        for jobs in _chunks(list(enumerate(cols_blend.starts)), options.batch_size)
    ]

    def read_batch(k: int) -> list[np.ndarray]:
        i, batch = batches[k]
        height = rows_blend.weights[i].size
        images = []
        for j, col in batch:
            width = cols_blend.weights[j].size
            with io_lock:
                image, _ = reader.read_rgb(p0 + rows_blend.starts[i], q0 + col, height, width)
            if height < tile_px or width < tile_px:  # grid smaller than a tile
                image = mirror_pad(image, tile_px)  # real pixels, never a black border
            images.append(image)
        return images

    prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rs2sam-read")
    next_read = prefetch.submit(read_batch, 0) if batches else None
    k = 0
    try:
        for i, row in enumerate(rows_blend.starts):
            row_w = rows_blend.weights[i]
            height = row_w.size
            while k < len(batches) and batches[k][0] == i:
                batch = batches[k][1]
                check_cancel()
                t0 = time.perf_counter()
                images = next_read.result()  # type: ignore[union-attr]
                k += 1
                next_read = prefetch.submit(read_batch, k) if k < len(batches) else None
                t1 = time.perf_counter()
                if predict_batch is not None and len(images) > 1:
                    probs = list(predict_batch(np.stack(images), model_text))
                else:
                    probs = [segmenter.predict(image, model_text) for image in images]
                t2 = time.perf_counter()
                for (j, col), prob in zip(batch, probs, strict=True):
                    prob = _check_prob(prob, tile_px)
                    col_w = cols_blend.weights[j]
                    width = col_w.size
                    _accumulate(
                        acc[row - acc_top : row - acc_top + height, col : col + width],
                        prob[:height, :width],
                        (row_w, rows_blend.keys[i]),
                        (col_w, cols_blend.keys[j]),
                        scratch,
                    )
                done += len(batch)
                t3 = time.perf_counter()
                timings["read"] += t1 - t0
                timings["model"] += t2 - t1
                timings["blend"] += t3 - t2
                if progress is not None:
                    progress(95.0 * done / n_tiles)
                report_stage("tiles", done, n_tiles)
            # rows that no later tile touches are final: normalise, resample, vectorise, drop
            is_last = i + 1 == len(rows_blend.starts)
            final_stop = (p1 - p0) if is_last else rows_blend.starts[i + 1]
            n_final = final_stop - acc_top
            t0 = time.perf_counter()
            block = acc[:n_final]
            for a, b in row_fix:  # in place, slice by slice: no temporary copy of the block
                a, b = max(a, acc_top), min(b, final_stop)
                if a < b:
                    block[a - acc_top : b - acc_top] /= rows_blend.total[a:b, None]
            for a, b in col_fix:
                block[:, a:b] /= cols_blend.total[None, a:b]
            timings["blend"] += time.perf_counter() - t0
            for raster_row, prob in resampler.push(block, acc_top, last=is_last):
                vectorize_strip(raster_row, prob)
            if not is_last:
                _shift_up(acc, n_final)
                acc_top = final_stop
    finally:
        if next_read is not None:
            next_read.cancel()
        prefetch.shutdown(wait=True)  # no read may outlive the open dataset
    if not resampler.next >= window.height:  # pragma: no cover - an invariant of the streaming
        raise RuntimeError("pipeline streaming ended before the last row of the window")

    report_stage("vectorize", 0, 0)
    t0 = time.perf_counter()
    polygons = pixel_to_map([p.geometry for p in finished], info.transform)
    if options.simplify > 0:
        polygons = [g.simplify(options.simplify, preserve_topology=True) for g in polygons]
    areas = geodesic_areas_m2(polygons, info.crs_wkt)
    model_name = str(getattr(segmenter, "name", None) or "custom")
    sha = str(getattr(segmenter, "checkpoint_sha256", None) or "")
    created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    gsd_field = float(gsd) if gsd is not None else float(math.sqrt(info.res_m[0] * info.res_m[1]))
    kept_polygons: list[Any] = []
    attributes: list[dict[str, Any]] = []
    for polygon, piece, area in zip(polygons, finished, areas, strict=False):
        if polygon.is_empty or area < options.min_area_m2:
            continue
        kept_polygons.append(polygon)
        attributes.append(
            {
                "prompt": options.text,
                "prompt_used": model_text,
                "score": round(piece.score, 6),
                "area_m2": area,
                "pixels": piece.pixels,
                "model": model_name,
                "checkpoint_sha256": sha,
                "source": info.name,
                "gsd_m": gsd_field,
                "threshold": options.threshold,
                "created_at": created_at,
            }
        )
    timings["attributes"] = time.perf_counter() - t0

    written: Path | None = None
    if out_path is not None:
        check_cancel()
        report_stage("write", 0, 0)
        from ..geo.writers import write_polygons

        t0 = time.perf_counter()
        written = write_polygons(
            out_path,
            kept_polygons,
            attributes,
            crs_wkt=info.crs_wkt,
            schema=FIELDS,
            overwrite=options.overwrite,
            metadata={
                **_layer_metadata(info, window, plan, options, gsd, bbox, bbox_crs),
                "prompt_used": model_text,
            },
        )
        timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    if progress is not None:
        progress(100.0)
    return SegmentResult(
        polygons=kept_polygons,
        attributes=attributes,
        crs=info.crs_wkt,
        out_path=written,
        window=(window.row_off, window.col_off, window.height, window.width),
        gsd_m=None if gsd is None else float(gsd),
        native_gsd_m=info.res_m,
        tile_px=tile_px,
        overlap_px=overlap_px,
        n_tiles=n_tiles,
        timings=timings,
        pixel_counts=counts,
        warnings=prompt.messages(),
        prompt_used=model_text,
    )


def _interpret_prompt(segmenter: SegmenterLike, text: str) -> Interpretation:
    """What the segmenter is given for ``text`` (:func:`backend.text.lexicon.interpret`).

    Uses the segmenter's optional ``unknown_words(text) -> list[str]`` (the RS2-SAM 2
    ``Segmenter`` has it): words it never saw are rewritten to trained names when the lexicon
    knows them, else reported. Segmenters without it (stand-ins) get the text unchanged.
    Each message is logged once, before the first tile.

    Raises:
        InputError: The model knows no word of ``text`` (or it has none).
    """
    unknown_words = getattr(segmenter, "unknown_words", None)
    prompt = interpret(text, unknown_words if callable(unknown_words) else None)
    for message in prompt.messages():
        logger.warning("%s", message)
    return prompt


def _layer_metadata(
    info: RasterInfo,
    window: PixelWindow,
    plan: _Plan,
    options: _Options,
    gsd: float | None,
    bbox: Sequence[float] | None,
    bbox_crs: Any,
) -> dict[str, str]:
    from shapely.geometry import box

    from .. import __version__
    from ..geo.vectorize import pixel_to_map

    extent = pixel_to_map(
        [box(window.col_off, window.row_off, window.col_stop, window.row_stop)], info.transform
    )[0]
    return {
        "prompt": options.text,
        "source": info.name,
        "extent_wkt": extent.wkt,
        "bbox": "" if bbox is None else ",".join(str(v) for v in bbox),
        "bbox_crs": "" if bbox_crs is None else str(bbox_crs),
        "gsd_m": "native" if gsd is None else f"{gsd:g}",
        "tile_px": str(plan.tile_px),
        "overlap_px": str(plan.overlap_px),
        "threshold": f"{options.threshold:g}",
        "backend_version": __version__,
    }


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    """``items`` in consecutive lists of at most ``size``."""
    return [items[a : a + size] for a in range(0, len(items), size)]
