"""The run over one open raster, in the five steps of the package docstring.

1-2. open and scale: :func:`~backend.pipeline.plan.make_plan` (CRS, window, bands, working grid);
3. tile and predict: :mod:`backend.pipeline.tiles` (read ahead, predict, blend);
4. stream and vectorise: :mod:`backend.pipeline.stream`;
5. attributes and write: :func:`_attributes`, :func:`_write`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..text.lexicon import Interpretation, interpret
from ..types import CancelFn, ProgressFn, SegmenterLike, StageFn
from .clicks import Click, TileClicks, format_clicks
from .options import _Options
from .plan import RunPlan, make_plan
from .prefetch import after_tile_modules, start_imports
from .result import FIELDS, SegmentResult
from .stream import StripVectoriser
from .tiles import (
    LockedReader,
    TileLayout,
    TileProgress,
    batch_predictor,
    predict_tiles,
    tile_layout,
    wants_read_ahead,
)

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

    from ..geo.raster import PixelWindow

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
    prompt: Interpretation | None = None,
    clicks: Sequence[Click] = (),
) -> SegmentResult:
    """Segment one open raster (see :func:`~backend.pipeline.segment_raster`).

    The five steps of the package docstring, one function each. ``window`` (raster pixels,
    instead of ``bbox``) and ``work_span`` (working-grid rows and columns ``((p0, p1), (q0,
    q1))`` to tile, instead of the window's own span) let a caller process one chunk of a
    large raster with exactly the tiles, blend weights and resampling of a whole-raster run
    (``backend.batch`` does). ``prompt`` is the caller's interpretation of ``options.text``
    for this segmenter (interpreted here when None).
    """
    t_start = time.perf_counter()
    report_stage = stage or (lambda _name, _done, _total: None)
    report_stage("read", 0, 0)
    timings = dict.fromkeys(("read", "model", "blend", "vectorize", "attributes", "write"), 0.0)
    prompt = prompt or _interpret_prompt(segmenter, options.text)
    plan = make_plan(  # steps 1 and 2: open (CRS, window, bands) and scale (working grid)
        dataset, options, segmenter, bbox=bbox, bbox_crs=bbox_crs, assume_crs=assume_crs,
        source_name=source_name, aoi=aoi, aoi_crs=aoi_crs, allow_large=allow_large,
        window=window, work_span=work_span, concepts=prompt.concepts,
    )  # fmt: skip
    tile_clicks = TileClicks(plan, clicks)  # a click outside the extent fails before any tile
    layout = tile_layout(plan, options.batch_size)
    tiles = _tile_progress(layout.n_tiles, is_cancelled, progress, report_stage)
    finished, counts = _predict_and_vectorise(dataset, plan, layout, options, segmenter, prompt,
                                              tiles, timings, tile_clicks,
                                              after_tile_modules(out_path))  # fmt: skip
    report_stage("vectorize", 0, 0)
    polygons, attributes = _attributes(
        plan, options, segmenter, prompt, finished, timings, format_clicks(clicks)
    )
    if out_path is not None:
        tiles.check_cancel()  # the last chance to stop before a file is written
    written = _write(out_path, polygons, attributes, plan, options, prompt, timings, report_stage)
    timings["total"] = time.perf_counter() - t_start
    if progress is not None:
        progress(100.0)
    return _result(plan, layout, polygons, attributes, written, timings, counts, prompt)


def _tile_progress(
    n_tiles: int,
    is_cancelled: CancelFn | None,
    progress: ProgressFn | None,
    report_stage: StageFn,
) -> TileProgress:
    def on_done(done: int, total: int) -> None:
        if progress is not None:
            progress(95.0 * done / total)
        report_stage("tiles", done, total)

    return TileProgress(n_tiles, is_cancelled, on_done)


def _predict_and_vectorise(
    dataset: DatasetReader,
    plan: RunPlan,
    layout: TileLayout,
    options: _Options,
    segmenter: SegmenterLike,
    prompt: Interpretation,
    tiles: TileProgress,
    timings: dict[str, float],
    clicks: TileClicks | None = None,
    prefetch: Sequence[str] = (),
) -> tuple[list[Any], dict[str, int]]:
    """Steps 3 and 4: tile and predict, streaming each finished band of rows to vectorising.

    ``prefetch``: modules to import in the background from the first model call on
    (:func:`~backend.pipeline.prefetch.start_imports`).

    Returns:
        The finished polygon pieces (pixel coordinates) and the run's pixel counts.
    """
    from ..geo.radiometry import compute_stretch
    from ..geo.tile_reader import TileReader

    info = plan.info
    stretch = compute_stretch(dataset, plan.bands, mode=options.stretch, has_mask=info.has_mask)
    reader = LockedReader(
        TileReader(dataset, plan.bands, stretch, scale_y=plan.grid.scale_y,
                   scale_x=plan.grid.scale_x, has_mask=info.has_mask)
    )  # fmt: skip
    logger.info(
        "%s: window %s, scale %.3g x %.3g, working span %s x %s, %d tiles of %d px",
        info.name, plan.window, plan.grid.scale_y, plan.grid.scale_x, plan.grid.work_rows,
        plan.grid.work_cols, layout.n_tiles, plan.tile_px,
    )  # fmt: skip
    vectoriser = StripVectoriser(plan, reader, options, timings)
    predict = batch_predictor(segmenter, prompt.model_text, options.batch_size, clicks)
    ahead = wants_read_ahead(segmenter)  # read ahead of the model and blend behind it

    def on_rows(block: Any, first: int, last: bool) -> None:
        vectoriser.push(block, first, last=last)

    started: list[threading.Thread] = []
    if prefetch:
        predict = _importing_from_first_call(predict, prefetch, started)
    try:
        predict_tiles(reader, plan, layout, predict, tiles, timings, on_rows,
                      read_ahead=ahead, blend_behind=ahead)  # fmt: skip
    finally:
        for thread in started:  # its imports are the run's next step anyway
            thread.join()
    return vectoriser.close(), vectoriser.counts


def _importing_from_first_call(
    predict: Any, names: Sequence[str], started: list[threading.Thread]
) -> Any:
    """``predict`` that starts importing ``names`` in the background at its first call.

    Started then, the imports overlap the model (which releases the GIL) rather than the
    main thread's opening, planning and first read, which they would slow down. The thread
    is appended to ``started`` for the caller to join.
    """
    pending = [names]

    def first_starts_imports(images: list[Any], boxes: list[Any]) -> list[Any]:
        if pending:
            thread = start_imports(pending.pop())
            if thread is not None:
                started.append(thread)
        return predict(images, boxes)  # type: ignore[no-any-return]

    return first_starts_imports


def _attributes(
    plan: RunPlan,
    options: _Options,
    segmenter: SegmenterLike,
    prompt: Interpretation,
    finished: list[Any],
    timings: dict[str, float],
    clicks: str = "",
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Step 5a: map coordinates, simplification, geodesic areas and the attribute rows."""
    from ..geo.vectorize import geodesic_areas_m2, pixel_to_map

    t0 = time.perf_counter()
    info, gsd = plan.info, plan.gsd_m
    polygons = pixel_to_map([p.geometry for p in finished], info.transform)
    if options.simplify > 0:
        polygons = [g.simplify(options.simplify, preserve_topology=True) for g in polygons]
    areas = geodesic_areas_m2(polygons, info.crs_wkt)
    common = {
        "prompt": options.text,
        "prompt_used": prompt.model_text,
        "model": str(getattr(segmenter, "name", None) or "custom"),
        "checkpoint_sha256": str(getattr(segmenter, "checkpoint_sha256", None) or ""),
        "source": info.name,
        "gsd_m": float(gsd) if gsd is not None else float(math.sqrt(info.res_m[0] * info.res_m[1])),
        "threshold": options.threshold,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    kept: list[Any] = []
    attributes: list[dict[str, Any]] = []
    for polygon, piece, area in zip(polygons, finished, areas, strict=False):
        if polygon.is_empty or area < options.min_area_m2:
            continue
        kept.append(polygon)
        attributes.append(
            {
                "prompt": common["prompt"],
                "prompt_used": common["prompt_used"],
                "score": round(piece.score, 6),
                "area_m2": area,
                "pixels": piece.pixels,
                **{k: common[k] for k in _TRAILING_FIELDS},
                "clicks": clicks,
            }
        )
    timings["attributes"] = time.perf_counter() - t0
    return kept, attributes


_TRAILING_FIELDS = ("model", "checkpoint_sha256", "source", "gsd_m", "threshold", "created_at")


def _write(
    out_path: str | os.PathLike[str] | None,
    polygons: list[Any],
    attributes: list[dict[str, Any]],
    plan: RunPlan,
    options: _Options,
    prompt: Interpretation,
    timings: dict[str, float],
    report_stage: StageFn,
) -> Path | None:
    """Step 5b: the atomic GeoPackage/GeoJSON write (nothing when ``out_path`` is None)."""
    if out_path is None:
        return None
    report_stage("write", 0, 0)
    from ..geo.writers import write_polygons

    t0 = time.perf_counter()
    written = write_polygons(
        out_path,
        polygons,
        attributes,
        crs_wkt=plan.info.crs_wkt,
        schema=FIELDS,
        overwrite=options.overwrite,
        metadata={**_layer_metadata(plan, options), "prompt_used": prompt.model_text},
    )
    timings["write"] = time.perf_counter() - t0
    return written


def _result(
    plan: RunPlan,
    layout: TileLayout,
    polygons: list[Any],
    attributes: list[dict[str, Any]],
    written: Path | None,
    timings: dict[str, float],
    counts: dict[str, int],
    prompt: Interpretation,
) -> SegmentResult:
    window = plan.window
    return SegmentResult(
        polygons=polygons,
        attributes=attributes,
        crs=plan.info.crs_wkt,
        out_path=written,
        window=(window.row_off, window.col_off, window.height, window.width),
        gsd_m=plan.gsd_m,
        native_gsd_m=plan.info.res_m,
        tile_px=plan.tile_px,
        overlap_px=plan.overlap_px,
        n_tiles=layout.n_tiles,
        timings=timings,
        pixel_counts=counts,
        warnings=prompt.messages(),
        prompt_used=prompt.model_text,
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


def _layer_metadata(plan: RunPlan, options: _Options) -> dict[str, str]:
    from shapely.geometry import box

    from .. import __version__
    from ..geo.vectorize import pixel_to_map

    window, info, gsd, bbox, bbox_crs = plan.window, plan.info, plan.gsd_m, plan.bbox, plan.bbox_crs
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
