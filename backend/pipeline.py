"""Georeferenced "segment by text": raster (+ bbox) + text -> polygons in the raster CRS.

The flow of :func:`segment_raster` (details and reasons in docs/pipeline.md):

1. Open the raster, resolve its CRS, turn the bbox (any CRS) into a pixel window.
2. Scale rule: resample the extent to the segmenter's working ground resolution on a grid
   anchored at the raster's pixel (0, 0) corner, so the same object lands on the same working
   pixels whatever the bbox or zoom.
3. Cover the extent with overlapping ``tile_px`` tiles, read each through a rasterio window,
   stretch it to uint8 RGB with statistics of the whole raster, and predict.
4. Stream: blend tiles (raised-cosine ramps) into an accumulator that holds only the rows of
   the current tile row; every finished band of rows is resampled back to the raster grid,
   nodata is zeroed, thresholded, and vectorised strip by strip; pieces that meet at strip
   seams are unioned. Memory depends on the extent's width, never on its area.
5. Attributes (score, geodesic area, provenance), then an atomic GeoPackage/GeoJSON write.

rasterio, shapely and pyproj are imported inside the functions (never torch), so importing
this module is cheap.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import Cancelled, InputError
from .geo.tiling import axis_blend, expand_span, linear_map, source_span
from .types import CancelFn, ProgressFn, SegmenterLike, StageFn

if TYPE_CHECKING:
    from affine import Affine
    from rasterio.io import DatasetReader

    from .geo.raster import PixelWindow, RasterInfo, StretchMode

__all__ = ["FIELDS", "SegmentResult", "segment_array", "segment_raster", "validate_inputs"]

logger = logging.getLogger(__name__)

FIELDS: tuple[tuple[str, type], ...] = (
    ("prompt", str),
    ("score", float),
    ("area_m2", float),
    ("pixels", int),
    ("model", str),
    ("checkpoint_sha256", str),
    ("source", str),
    ("gsd_m", float),
    ("threshold", float),
    ("created_at", str),
)
"""Output fields (name, type) of every polygon, in file order (contract section 4 + provenance)."""

GsdOption = float | None | Literal["auto"]

_SCALE_SNAP = 5e-3  # working/native GSD ratios within 0.5 % of 1 are treated as native


@dataclass
class SegmentResult:
    """The polygons of one run and how they were made.

    Attributes:
        polygons: Shapely polygons in the raster CRS, holes kept, vertices on pixel edges
            (unless simplified).
        attributes: One dict per polygon with the fields of :data:`FIELDS`.
        crs: WKT of the raster CRS (= the polygons' CRS).
        out_path: The written file, or None.
        window: ``(row_off, col_off, height, width)`` of the processed raster pixels.
        gsd_m: Working ground resolution (m/px) the segmenter saw; None = native pixels.
        native_gsd_m: Ground size (m) of a raster pixel along columns and rows.
        tile_px, overlap_px: Tiling of the working grid.
        n_tiles: Number of tiles predicted.
        timings: Seconds per stage (``read``, ``model``, ``blend``, ``vectorize``,
            ``attributes``, ``write``, ``total``).
        pixel_counts: ``window`` (raster pixels processed), ``working`` (working pixels
            predicted, overlaps counted once), ``valid`` (non-nodata pixels, when known),
            ``positive`` (pixels above the threshold, before min-area filtering).
        warnings: Things the user should know about this result, one sentence each (e.g.
            words of the prompt the model never saw in training); also logged.
    """

    polygons: list[Any]
    attributes: list[dict[str, Any]]
    crs: str
    out_path: Path | None
    window: tuple[int, int, int, int]
    gsd_m: float | None
    native_gsd_m: tuple[float, float]
    tile_px: int
    overlap_px: int
    n_tiles: int
    timings: dict[str, float] = field(default_factory=dict)
    pixel_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.polygons)

    @property
    def scores(self) -> list[float]:
        """Mean probability inside each polygon."""
        return [a["score"] for a in self.attributes]

    @property
    def areas_m2(self) -> list[float]:
        """True ground area of each polygon in m^2."""
        return [a["area_m2"] for a in self.attributes]


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


def validate_inputs(
    raster: str | os.PathLike[str],
    text: str,
    *,
    bbox: Sequence[float] | None = None,
    bbox_crs: Any = None,
    out_path: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    assume_crs: Any = None,
    bands: Sequence[int] | None = None,
    threshold: float = 0.5,
    min_area_m2: float = 0.0,
    simplify: float = 0.0,
    gsd_m: GsdOption = "auto",
) -> None:
    """Run the cheap checks of :func:`segment_raster` without a segmenter or model.

    The CLI calls this before loading the model; it raises the same errors as
    :func:`segment_raster` would.
    """
    import rasterio

    from .geo.raster import (
        GDAL_CACHE_MB,
        bbox_to_window,
        choose_bands,
        open_raster,
        raster_info,
        resolve_crs,
    )
    from .geo.writers import check_output_path

    _check_options(
        text, threshold, min_area_m2, simplify, bands, gsd_m, None, None, 1, "auto", overwrite, 1
    )
    if out_path is not None:
        check_output_path(out_path, overwrite=overwrite)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_raster(raster) as dataset:
        info = raster_info(dataset, resolve_crs(dataset, assume_crs))
        bbox_to_window(info, bbox, bbox_crs)
        choose_bands(info, bands)


def segment_raster(
    raster: str | os.PathLike[str],
    text: str,
    segmenter: SegmenterLike | None = None,
    bbox: Sequence[float] | None = None,
    bbox_crs: Any = None,
    out_path: str | os.PathLike[str] | None = None,
    threshold: float = 0.5,
    *,
    min_area_m2: float = 0.0,
    simplify: float = 0.0,
    bands: Sequence[int] | None = None,
    gsd_m: GsdOption = "auto",
    tile_px: int | None = None,
    overlap_px: int | None = None,
    batch_size: int = 1,
    stretch: StretchMode = "auto",
    overwrite: bool = False,
    assume_crs: Any = None,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    strip_rows: int = 128,
    source_name: str | None = None,
    aoi: Any = None,
    aoi_crs: Any = None,
    stage: StageFn | None = None,
) -> SegmentResult:
    """Segment what ``text`` describes in a georeferenced raster; polygons in the raster CRS.

    Args:
        raster: Path of any GDAL-readable raster.
        text: The referring expression, e.g. ``"the white buildings"``.
        segmenter: Anything with ``predict((H, W, 3) uint8, text) -> (H, W) float32``; optional
            attributes ``name``, ``checkpoint_sha256``, ``image_size``, ``gsd_m`` and
            ``predict_batch`` are used when present. None loads the bundled default model.
        bbox: ``(minx, miny, maxx, maxy)`` to process, or None for the whole raster.
        bbox_crs: CRS of ``bbox`` (anything pyproj/rasterio accepts); None = raster CRS.
        out_path: ``.gpkg`` or ``.geojson`` to write atomically; None = don't write.
        threshold: Probability at or above which a pixel belongs to the object, in (0, 1].
        min_area_m2: Drop polygons smaller than this true ground area (m^2).
        simplify: Douglas-Peucker tolerance in map units of the raster CRS; 0 = exact pixel
            edges.
        bands: 1-based bands used as R, G, B (or one band, replicated); default: the first
            three non-alpha bands, or the only one.
        gsd_m: Working ground resolution in m/px: ``"auto"`` = the segmenter's ``gsd_m``,
            None = the raster's native pixels, or a number.
        tile_px: Model tile size on the working grid; default the segmenter's ``image_size``
            (1024 when absent).
        overlap_px: Overlap between tiles; default ``tile_px // 8``.
        batch_size: Tiles per ``predict_batch`` call (when the segmenter has it).
        stretch: ``"auto"`` (identity for uint8, else a 2-98 % per-band stretch from the whole
            raster), ``"percentile"`` or ``"none"``.
        overwrite: Replace an existing ``out_path``.
        assume_crs: CRS to use when the raster has none (otherwise an error).
        progress: Called with percent done (0-100) after each tile and at the end.
        is_cancelled: Checked before each tile; True stops with :class:`Cancelled` and
            nothing written.
        strip_rows: Raster rows vectorised at a time (memory/speed knob; results do not
            depend on it).
        source_name: Name written to the ``source`` field; default the file name.
        aoi: Area of interest, a shapely polygon/multipolygon or WKT: only pixels whose centre
            lies inside it can become polygons (scores and areas describe the inside part).
            Without ``bbox`` its bounds are the bbox.
        aoi_crs: CRS of ``aoi``; None = the raster CRS.
        stage: Optional ``(stage, done, total)`` callback naming what runs now (GUIs show it):
            ``read``, ``tiles`` (k of n, after each batch), ``vectorize``, ``write``.

    Returns:
        The polygons, their attributes (:data:`FIELDS`) and run details.

    Raises:
        InputError, RasterReadError, UnsupportedRasterError, OutputError: Bad input; the
            message names the value and the fix.
        Cancelled: ``is_cancelled()`` returned True.
    """
    import rasterio

    from .geo.raster import GDAL_CACHE_MB, open_raster

    options = _check_options(
        text,
        threshold,
        min_area_m2,
        simplify,
        bands,
        gsd_m,
        tile_px,
        overlap_px,
        batch_size,
        stretch,
        overwrite,
        strip_rows,
    )
    if out_path is not None:
        from .geo.writers import check_output_path

        check_output_path(out_path, overwrite=overwrite)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_raster(raster) as dataset:
        if segmenter is None:
            segmenter = _default_segmenter()
        return _run(
            dataset,
            options,
            segmenter,
            bbox=bbox,
            bbox_crs=bbox_crs,
            out_path=out_path,
            assume_crs=assume_crs,
            progress=progress,
            is_cancelled=is_cancelled,
            source_name=source_name,
            aoi=aoi,
            aoi_crs=aoi_crs,
            stage=stage,
        )


def segment_array(
    array: np.ndarray,
    transform: Affine | Sequence[float],
    crs: Any,
    text: str,
    segmenter: SegmenterLike | None = None,
    *,
    valid_mask: np.ndarray | None = None,
    source_name: str = "memory",
    **kwargs: Any,
) -> SegmentResult:
    """:func:`segment_raster` for pixels already in memory (e.g. a QGIS WMS/XYZ layer's render).

    The pixels are wrapped as an in-memory GeoTIFF (GDAL ``/vsimem/``) and go through exactly
    the same code as a file. The stretch statistics then come from this array.

    Args:
        array: ``(H, W, bands)`` (or ``(H, W)``) pixels, any numeric dtype.
        transform: Pixel-to-map ``Affine`` of ``array``, or a 6-number GDAL geotransform
            ``(x0, dx, rx, y0, ry, dy)``.
        crs: CRS of ``transform`` (WKT, ``"EPSG:N"``, ...).
        text: The referring expression.
        segmenter: As for :func:`segment_raster`.
        valid_mask: ``(H, W)`` bool, False where there is no data (never polygonised).
        source_name: Value of the ``source`` field.
        **kwargs: Any keyword of :func:`segment_raster` (bbox, out_path, threshold, ...).
    """
    from .geo.raster import array_file

    unknown = set(kwargs) - _SEGMENT_RASTER_KEYWORDS
    if unknown:
        raise TypeError(f"segment_array() got unexpected keyword arguments {sorted(unknown)}")
    with array_file(array, transform, crs, valid_mask=valid_mask) as path:
        return segment_raster(path, text, segmenter, source_name=source_name, **kwargs)


_SEGMENT_RASTER_KEYWORDS = frozenset(inspect.signature(segment_raster).parameters) - {
    "raster",
    "text",
    "segmenter",
    "source_name",
}
"""Keywords :func:`segment_array` passes on to :func:`segment_raster`."""


def _default_segmenter() -> SegmenterLike:
    from . import load_segmenter

    return load_segmenter()


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
    info: RasterInfo, window: PixelWindow, gsd: float | None, tile_px: int, overlap_px: int
) -> _Plan:
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
    stage: StageFn | None = None,
) -> SegmentResult:
    from .geo.raster import (
        PixelWindow,
        TileReader,
        bbox_to_window,
        choose_bands,
        compute_stretch,
        raster_info,
        resolve_crs,
    )
    from .geo.vectorize import SeamMerger, geodesic_areas_m2, pixel_to_map, strip_pieces

    report_stage = stage or (lambda _name, _done, _total: None)
    report_stage("read", 0, 0)
    t_start = time.perf_counter()
    timings = dict.fromkeys(("read", "model", "blend", "vectorize", "attributes", "write"), 0.0)
    crs = resolve_crs(dataset, assume_crs)
    info = raster_info(dataset, crs, name=source_name)
    aoi_px = None
    if aoi is not None:
        from .geo.aoi import aoi_bounds, aoi_strip_mask, aoi_to_pixels, parse_aoi

        aoi_geometry = parse_aoi(aoi)
        if bbox is None:
            bbox, bbox_crs = aoi_bounds(aoi_geometry), aoi_crs
        aoi_px = aoi_to_pixels(aoi_geometry, aoi_crs, info)
    window = bbox_to_window(info, bbox, bbox_crs)
    bands = choose_bands(info, options.bands)

    tile_px = options.tile_px or int(getattr(segmenter, "image_size", None) or 1024)
    overlap_px = tile_px // 8 if options.overlap_px is None else options.overlap_px
    if overlap_px >= tile_px:
        raise InputError(f"overlap_px={overlap_px} must be smaller than tile_px={tile_px}")
    gsd = getattr(segmenter, "gsd_m", None) if options.gsd_m == "auto" else options.gsd_m
    if gsd is not None and (not _finite(gsd) or gsd <= 0):
        raise InputError(f"segmenter gsd_m={gsd!r} must be > 0 or None")
    plan = _plan(info, window, gsd, tile_px, overlap_px)
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

    def check_cancel() -> None:
        if is_cancelled is not None and is_cancelled():
            raise Cancelled(f"cancelled by the user after {done} of {n_tiles} tiles")

    def vectorize_strip(raster_row: int, prob: np.ndarray) -> None:
        t0 = time.perf_counter()
        strip = PixelWindow(raster_row, window.col_off, prob.shape[0], window.width)
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

    n_cols = len(cols_blend.starts)
    for i, row in enumerate(rows_blend.starts):
        row_w = rows_blend.weights[i]
        height = row_w.size
        jobs = [(j, col) for j, col in enumerate(cols_blend.starts)]
        for batch_start in range(0, n_cols, options.batch_size):
            batch = jobs[batch_start : batch_start + options.batch_size]
            check_cancel()
            t0 = time.perf_counter()
            images = []
            for j, col in batch:
                width = cols_blend.weights[j].size
                image, _ = reader.read_rgb(p0 + row, q0 + col, height, width)
                if height < tile_px or width < tile_px:  # grid smaller than a tile: pad
                    padded = np.zeros((tile_px, tile_px, 3), dtype=np.uint8)
                    padded[:height, :width] = image
                    image = padded
                images.append(image)
            t1 = time.perf_counter()
            if predict_batch is not None and len(images) > 1:
                probs = list(predict_batch(np.stack(images), options.text))
            else:
                probs = [segmenter.predict(image, options.text) for image in images]
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
        from .geo.writers import write_polygons

        t0 = time.perf_counter()
        written = write_polygons(
            out_path,
            kept_polygons,
            attributes,
            crs_wkt=info.crs_wkt,
            schema=FIELDS,
            overwrite=options.overwrite,
            metadata=_layer_metadata(info, window, plan, options, gsd, bbox, bbox_crs),
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
        warnings=_prompt_warnings(segmenter, options.text),
    )


def _prompt_warnings(segmenter: SegmenterLike, text: str) -> list[str]:
    """Warnings about ``text``: words the segmenter's weights never saw in training (logged).

    Uses the segmenter's optional ``unknown_words(text) -> list[str]`` (the RS2-SAM 2
    ``Segmenter`` has it; stand-ins and other segmenters need not).
    """
    unknown_words = getattr(segmenter, "unknown_words", None)
    words = list(unknown_words(text)) if callable(unknown_words) else []
    if not words:
        return []
    quoted = ", ".join(f"'{w}'" for w in words)
    verb = "it means" if len(words) == 1 else "they mean"
    message = (
        f"the model never saw {quoted} in training, so {verb} nothing to it and the result "
        "follows the other words only; rephrase with other words"
    )
    logger.warning("%s", message)
    return [message]


def _shift_up(acc: np.ndarray, n: int) -> None:
    """Drop the first ``n`` rows of ``acc``, move the rest up and zero the freed rows.

    Copies in row chunks no taller than ``n`` so source and destination never overlap and
    numpy needs no temporary copy (the kept rows can be almost the whole buffer).
    """
    keep = acc.shape[0] - n
    step = max(1, min(n, 64))
    for i in range(0, keep, step):
        j = min(i + step, keep)
        acc[i:j] = acc[n + i : n + j]
    acc[max(keep, 0) :] = 0.0


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of every run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _accumulate(
    acc: np.ndarray,
    prob: np.ndarray,
    rows: tuple[np.ndarray, tuple[int, int, int]],
    cols: tuple[np.ndarray, tuple[int, int, int]],
    scratch: np.ndarray,
) -> None:
    """``acc += prob * row_w[:, None] * col_w[None, :]``, touching only the ramps twice.

    The weights are 1 except in the ramps at the tile's borders, so the tile is split in 3 x 3
    parts: the centre is a plain add, the borders are multiplied first (in ``scratch``).
    """
    (row_w, (h, r_in, r_out)), (col_w, (w, c_in, c_out)) = rows, cols
    if r_in + r_out > h or c_in + c_out > w:  # ramps overlap (tiny tiles): weight everything
        tmp = np.multiply(prob, row_w[:, None], out=scratch[:h, :w])
        tmp *= col_w[None, :]
        acc += tmp
        return
    row_parts = ((0, r_in, True), (r_in, h - r_out, False), (h - r_out, h, True))
    col_parts = ((0, c_in, True), (c_in, w - c_out, False), (w - c_out, w, True))
    for r0, r1, row_ramp in row_parts:
        if r1 <= r0:
            continue
        for c0, c1, col_ramp in col_parts:
            if c1 <= c0:
                continue
            src = prob[r0:r1, c0:c1]
            dst = acc[r0:r1, c0:c1]
            if not row_ramp and not col_ramp:
                dst += src
                continue
            tmp = scratch[r0:r1, c0:c1]
            if row_ramp:
                np.multiply(src, row_w[r0:r1, None], out=tmp)
                if col_ramp:
                    tmp *= col_w[None, c0:c1]
            else:
                np.multiply(src, col_w[None, c0:c1], out=tmp)
            dst += tmp


def _check_prob(prob: Any, tile_px: int) -> np.ndarray:
    prob = np.asarray(prob)
    if prob.shape != (tile_px, tile_px):
        raise InputError(
            f"segmenter returned probabilities of shape {prob.shape} for a "
            f"({tile_px}, {tile_px}, 3) image; predict() must return (H, W)"
        )
    if prob.dtype != np.float32:
        prob = prob.astype(np.float32)
    # contract: values in [0, 1]; clip (a copy) only when a segmenter breaks it
    if prob.size and (prob.min() < 0.0 or prob.max() > 1.0):
        prob = np.clip(prob, 0.0, 1.0)
    return prob


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

    from . import __version__
    from .geo.vectorize import pixel_to_map

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
