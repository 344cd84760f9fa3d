"""Public entry points: :func:`segment_raster`, :func:`segment_array`, :func:`validate_inputs`."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..text.lexicon import interpret, require_words
from ..types import CancelFn, ProgressFn, SegmenterLike, StageFn
from .clicks import Click, clicks_segmenter_check
from .options import GsdOption, _check_options
from .plan import RunPlan, check_not_an_input, make_plan
from .result import SegmentResult
from .run import _interpret_prompt, _run

if TYPE_CHECKING:
    from affine import Affine

    from ..geo.radiometry import StretchMode


def validate_inputs(
    raster: str | os.PathLike[str],
    text: str,
    *,
    segmenter: Any = None,
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
    tile_px: int | None = None,
    overlap_px: int | None = None,
    aoi: Any = None,
    aoi_crs: Any = None,
    allow_large: bool = False,
) -> RunPlan:
    """Validate and plan a run without running a model: the checks of :func:`segment_raster`.

    The CLI calls this before loading the model (with a description of the model read from
    the checkpoint header), the plugin and Processing before they start a task; it raises the
    same errors :func:`segment_raster` would.

    Args:
        raster: As for :func:`segment_raster` (and every keyword of the same name).
        text: The referring expression.
        segmenter: A segmenter, or any object with the model's ``image_size``, ``gsd_m`` and
            (optional) ``seconds_per_tile``; None plans with 1024 px tiles at native pixels.
        bbox: See :func:`segment_raster`.
        bbox_crs: See :func:`segment_raster`.
        out_path: See :func:`segment_raster`.
        overwrite: See :func:`segment_raster`.
        assume_crs: See :func:`segment_raster`.
        bands: See :func:`segment_raster`.
        threshold: See :func:`segment_raster`.
        min_area_m2: See :func:`segment_raster`.
        simplify: See :func:`segment_raster`.
        gsd_m: See :func:`segment_raster`.
        tile_px: See :func:`segment_raster`.
        overlap_px: See :func:`segment_raster`.
        aoi: See :func:`segment_raster`.
        aoi_crs: See :func:`segment_raster`.
        allow_large: See :func:`segment_raster`.

    Returns:
        The :class:`~backend.pipeline.plan.RunPlan` (tiles, working grid, estimated time).
    """
    import rasterio

    from ..geo.raster import GDAL_CACHE_MB, open_raster
    from ..geo.writers import check_output_path

    options = _check_options(
        text,
        threshold,
        min_area_m2,
        simplify,
        bands,
        gsd_m,
        tile_px,
        overlap_px,
        1,
        "auto",
        overwrite,
        1,
    )
    unknown_words = getattr(segmenter, "unknown_words", None)
    prompt = interpret(options.text, unknown_words if callable(unknown_words) else None)
    if out_path is not None:
        check_output_path(out_path, overwrite=overwrite)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_raster(raster) as dataset:
        if out_path is not None:
            check_not_an_input(out_path, [str(raster), *dataset.files])
        return make_plan(
            dataset,
            options,
            segmenter,
            bbox=bbox,
            bbox_crs=bbox_crs,
            assume_crs=assume_crs,
            source_name=None,
            aoi=aoi,
            aoi_crs=aoi_crs,
            allow_large=allow_large,
            concepts=prompt.concepts,
        )


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
    allow_large: bool = False,
    stage: StageFn | None = None,
    points: Sequence[Click] | None = None,
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
        allow_large: Run even beyond the documented limits (:data:`~backend.pipeline.plan.
            MAX_TILES` tiles or :data:`~backend.pipeline.plan.MAX_SECONDS` of estimated model
            time); without it such a run is refused before it starts.
        stage: Optional ``(stage, done, total)`` callback naming what runs now (GUIs show it):
            ``read``, ``tiles`` (k of n, after each batch), ``vectorize``, ``write``.
        points: Clicks next to the text (:class:`~backend.pipeline.clicks.Click`, in the
            raster's CRS; positive or negative): every tile that holds one is predicted with
            the clicks inside it (a segmenter with ``predict_clicks``). Stored in the
            ``clicks`` field.

    Returns:
        The polygons, their attributes (:data:`FIELDS`) and run details.

    Raises:
        InputError, RasterReadError, UnsupportedRasterError, OutputError: Bad input; the
            message names the value and the fix.
        ResourceError: The run exceeds a limit (see ``allow_large``) or the memory.
        Cancelled: ``is_cancelled()`` returned True.
    """
    import rasterio

    from ..geo.raster import GDAL_CACHE_MB, open_raster

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
        from ..geo.writers import check_output_path

        check_output_path(out_path, overwrite=overwrite)
    if segmenter is None:
        require_words(options.text)  # a text without words fails before the model loads
    else:
        _check_segmenter(segmenter)
        if points:
            clicks_segmenter_check(segmenter)
    # the prompt is interpreted once per run, before any pixel is read
    prompt = None if segmenter is None else _interpret_prompt(segmenter, options.text)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_raster(raster) as dataset:
        if out_path is not None:
            check_not_an_input(out_path, [str(raster), *dataset.files])
        if segmenter is None:
            segmenter = _default_segmenter()
            prompt = _interpret_prompt(segmenter, options.text)
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
            allow_large=allow_large,
            stage=stage,
            prompt=prompt,
            clicks=tuple(points or ()),
        )


def _check_segmenter(segmenter: Any) -> None:
    """A segmenter must have ``predict(image, text)``; say so instead of an AttributeError."""
    if not callable(getattr(segmenter, "predict", None)):
        raise InputError(
            f"segmenter {type(segmenter).__name__!r} has no predict(image, text) method; pass "
            "backend.load_segmenter(...) or any object with predict((H, W, 3) uint8, str) -> "
            "(H, W) float32"
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
    from ..geo.inmemory import array_file

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
    from .. import load_segmenter

    return load_segmenter()
