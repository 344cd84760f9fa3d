"""The worker side of a run: load (or reuse) the model, get pixels, call the backend.

:func:`run_segmentation` is shared by the dock's ``QgsTask`` and the Processing algorithm. It
never touches the project, layers or widgets; the only QGIS object it uses is the cloned data
provider carried by a :class:`~.request.ProviderSource`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from qgis.core import Qgis, QgsRectangle

from . import min_area
from ._backend import backend_module, get_backend
from .i18n import tr
from .models import CACHE
from .native_libs import isolate_native_libraries, prepare_torch_stack
from .quality_note import note_concepts, note_for
from .request import ProviderSource, RunOutcome, SegmentRequest

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]
StageFn = Callable[[str, str], None]
"""``(key, text)``: key is ``load``, ``read``, ``tiles``, ``vectorize`` or ``write``; text is
what the dock's status line (and Processing's progress text) shows."""

LOAD_SHARE = 10.0
"""Percent of the progress bar given to model loading."""

_NUMPY_TYPES = {
    Qgis.DataType.Byte: np.uint8,
    Qgis.DataType.UInt16: np.uint16,
    Qgis.DataType.Int16: np.int16,
    Qgis.DataType.UInt32: np.uint32,
    Qgis.DataType.Int32: np.int32,
    Qgis.DataType.Float32: np.float32,
    Qgis.DataType.Float64: np.float64,
}


_executor_lock = threading.Lock()
_executor: dict[str, ThreadPoolExecutor] = {}


def run_on_backend_thread(
    request: SegmentRequest,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    stage: StageFn | None = None,
) -> RunOutcome:
    """:func:`run_segmentation` on the plugin's one long-lived Python worker thread; waits.

    Why: a ``QgsTask`` (and a Processing algorithm started from the toolbox) runs in a
    ``QThreadPool`` thread whose Python thread state is created and destroyed around every
    run. pyproj keeps its PROJ context in native thread-local storage but frees it with the
    Python ``threading.local`` - so the second run on a reused pool thread uses a freed
    context and QGIS segfaults (pyproj 3.7.2, seen in ``CRS.from_wkt``). A thread created by
    Python keeps its state, so every backend call goes through this one. It also keeps torch's
    per-thread state and the model cache on a single thread.

    Called on the main thread (``qgis_process``, ``processing.run`` in scripts) it runs inline.
    """
    return call_on_backend_thread(run_segmentation, request, progress, is_cancelled, stage)


def call_on_backend_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on the plugin's one backend thread (inline on the main thread); waits.

    See :func:`run_on_backend_thread` for why; the adaptation engine runs there too.
    """
    if threading.current_thread() is threading.main_thread():
        return fn(*args)
    return submit_on_backend_thread(fn, *args).result()


def submit_on_backend_thread(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Queue ``fn(*args)`` on the plugin's one backend thread; returns at once.

    Work runs there in the order it was queued (the dock's model preload, then a query).
    """
    with _executor_lock:
        executor = _executor.get("pool")
        if executor is None:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rs2sam-backend")
            _executor["pool"] = executor
    return executor.submit(fn, *args)


def call_with_torch(fn: Callable[[], Any]) -> Any:
    """``fn()`` (torch work other than a query: the model manager's import) on the backend thread.

    The native libraries are isolated and torch is imported the safe way first (see
    :func:`~.native_libs.prepare_torch_stack`), as for a query. Inline on the main thread.
    """

    def prepared() -> Any:
        isolate_native_libraries()
        prepare_torch_stack()
        return fn()

    return call_on_backend_thread(prepared)


def shutdown_backend_thread() -> None:
    """Let the worker thread end once idle (plugin unload); a later run starts a new one."""
    with _executor_lock:
        executor = _executor.pop("pool", None)
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)


def stage_text(key: str, done: int = 0, total: int = 0, cold: bool = False) -> str:
    """The status-line text of a stage (see :data:`StageFn`)."""
    if key == "load":
        return (
            tr("Loading the model (first query: importing torch and reading the weights)…")
            if cold
            else tr("Loading the model…")
        )
    if key == "read":
        return tr("Reading the raster…")
    if key == "tiles":
        return tr("Segmenting: tile {k} of {n}…").format(k=done, n=total)
    if key == "vectorize":
        return tr("Vectorising the polygons…")
    if key == "write":
        return tr("Writing the result…")
    return key


def run_segmentation(
    request: SegmentRequest,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    stage: StageFn | None = None,
) -> RunOutcome:
    """Run one query end to end and write ``request.out_path``.

    Args:
        request: The run (plain data).
        progress: Receives percent done in ``[0, 100]``.
        is_cancelled: Polled between steps and by the backend between tiles.
        stage: Receives ``(key, text)`` when a stage starts (model load, read, each tile,
            vectorise, write).

    Returns:
        What was produced.

    Raises:
        backend.errors.Cancelled: ``is_cancelled()`` became True.
        backend.errors.Rs2SamError: a user-fixable problem (message is shown as-is).
    """
    report = progress or (lambda _p: None)
    cancelled = is_cancelled or (lambda: False)
    say = stage or (lambda _key, _text: None)
    errors = backend_module("errors")
    start = time.perf_counter()

    report(0.0)
    # clicks next to the text ("x,y,+;x,y,-", raster CRS): refused before the model loads
    points = backend_module("pipeline.clicks").parse_clicks(request.points)
    cold = not CACHE.contains(request.model, request.device, request.precision)
    say("load", stage_text("load", cold=cold))
    isolate_native_libraries()  # before the backend first imports shapely/pyproj/rasterio
    import_start = time.perf_counter()
    if request.model.standin is None:
        prepare_torch_stack()  # torch, then triton deep-bound (QGIS desktop segfault otherwise)
    import_seconds = time.perf_counter() - import_start
    segmenter, load_seconds = CACHE.get(
        request.model, request.device, request.threads, request.precision
    )
    if load_seconds > 0:
        load_seconds += import_seconds  # first load: count the torch import as loading
    if cancelled():
        raise errors.Cancelled("cancelled after loading the model")
    report(LOAD_SHARE)

    def backend_progress(percent: float) -> None:
        report(LOAD_SHARE + (100.0 - LOAD_SHARE) * max(0.0, min(100.0, percent)) / 100.0)

    gsd = min_area.working_gsd(request.gsd_m, segmenter, note_concepts(request.text))
    min_area_m2, min_area_text = min_area.resolve(request.min_area_m2, gsd)
    options: dict[str, Any] = {
        "segmenter": segmenter,
        "out_path": request.out_path,
        "threshold": request.threshold,
        "min_area_m2": min_area_m2,
        "gsd_m": "auto" if request.gsd_m is None else request.gsd_m,
        "progress": backend_progress,
        "is_cancelled": cancelled,
        "allow_large": request.allow_large,
        "stage": lambda key, done, total: say(key, stage_text(key, done, total)),
    }
    if points:
        options["points"] = points
    if request.aoi_wkt:  # selected polygons: the backend keeps only pixels inside them
        options["aoi"] = request.aoi_wkt
        options["aoi_crs"] = request.aoi_crs or request.bbox_crs
    if isinstance(request.source, ProviderSource):
        result = _segment_provider_pixels(request, request.source, options, cancelled)
    else:
        result = get_backend().segment_raster(
            request.source.path,
            request.text,
            bbox=request.bbox,
            bbox_crs=request.bbox_crs,
            **options,
        )
    polygons, areas = list(result.polygons), list(result.areas_m2)
    prompt_used = str(getattr(result, "prompt_used", "") or request.text)
    note, weak, concepts = note_for(segmenter, prompt_used)
    report(100.0)
    return RunOutcome(
        out_path=request.out_path,
        polygons=len(polygons),
        area_m2=float(sum(areas)),
        seconds=time.perf_counter() - start,
        load_seconds=load_seconds,
        model_name=str(getattr(segmenter, "name", "custom")),
        warnings=tuple(result.warnings),
        prompt_used=prompt_used,
        quality_note=note,
        quality_weak=weak,
        concepts=concepts,
        min_area_text=min_area_text,
    )


def read_provider_pixels(
    source: ProviderSource,
) -> tuple[np.ndarray, tuple[float, ...], np.ndarray | None]:
    """Read pixels through the cloned provider (worker thread).

    Args:
        source: Provider clone, extent, size and bands.

    Returns:
        ``(image, geotransform, valid_mask)``: ``image`` is ``(H, W, C)`` - uint8 RGB for ARGB32
        providers such as XYZ/WMS, else the native dtype of up to three bands; ``geotransform``
        is GDAL-ordered ``(x0, dx, 0, y0, 0, -dy)`` in ``source.crs_wkt``; ``valid_mask`` is
        ``(H, W)`` bool (False = transparent/nodata) or None when every pixel is valid.
    """
    provider = source.provider
    minx, miny, maxx, maxy = source.extent
    rect = QgsRectangle(minx, miny, maxx, maxy)
    width, height = source.width, source.height
    transform = (minx, (maxx - minx) / width, 0.0, maxy, 0.0, -(maxy - miny) / height)
    if provider.dataType(1) in (Qgis.DataType.ARGB32, Qgis.DataType.ARGB32_Premultiplied):
        block = provider.block(1, rect, width, height)
        argb = np.frombuffer(bytes(block.data()), dtype=np.uint32).reshape(height, width)
        alpha = (argb >> 24) & 0xFF
        rgb = np.stack([(argb >> 16) & 0xFF, (argb >> 8) & 0xFF, argb & 0xFF], axis=-1)
        if provider.dataType(1) == Qgis.DataType.ARGB32_Premultiplied:
            scale = np.where(alpha > 0, 255.0 / np.maximum(alpha, 1), 0.0)[..., None]
            rgb = np.clip(rgb * scale, 0, 255)
        valid = alpha > 0
        return rgb.astype(np.uint8), transform, None if valid.all() else valid
    bands = [b for b in source.bands if b <= provider.bandCount()] or [1]
    planes = []
    valid = np.ones((height, width), dtype=bool)
    for band in bands:
        block = provider.block(band, rect, width, height)
        dtype = _NUMPY_TYPES.get(block.dataType())
        if dtype is None:
            raise backend_module("errors").UnsupportedRasterError(
                tr(
                    "band {band} has QGIS data type {dtype}, which the plugin cannot read; export "
                    "the layer to GeoTIFF (Raster > Conversion > Translate) and use that"
                ).format(band=band, dtype=block.dataType())
            )
        plane = np.frombuffer(bytes(block.data()), dtype=dtype).reshape(height, width)
        if block.hasNoDataValue():
            valid &= plane != block.noDataValue()
        planes.append(plane)
    return np.stack(planes, axis=-1), transform, None if valid.all() else valid


def _segment_provider_pixels(
    request: SegmentRequest, source: ProviderSource, options: dict[str, Any], cancelled: CancelFn
) -> Any:
    """Read the pixels, then hand them to the backend with their geotransform and CRS."""
    options["stage"]("read", 0, 0)
    image, transform, valid = read_provider_pixels(source)
    if cancelled():
        raise backend_module("errors").Cancelled("cancelled after reading the pixels")
    return get_backend().segment_array(
        image,
        transform,
        source.crs_wkt,
        request.text,
        valid_mask=valid,
        source_name=request.source_name or "memory",
        **options,  # no bbox: the pixels were read for exactly the area to segment
    )
