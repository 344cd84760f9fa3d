"""The worker side of a run: load (or reuse) the model, get pixels, call the backend.

:func:`run_segmentation` is shared by the dock's ``QgsTask`` and the Processing algorithm. It
never touches the project, layers or widgets; the only QGIS object it uses is the cloned data
provider carried by a :class:`~.request.ProviderSource`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from qgis.core import Qgis, QgsRectangle

from ._backend import backend_module, get_backend
from .models import CACHE
from .request import ProviderSource, RunOutcome, SegmentRequest

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]

LOAD_SHARE = 10.0
"""Percent of the progress bar given to model loading."""

_NUMPY_TYPES = {
    Qgis.Byte: np.uint8,
    Qgis.UInt16: np.uint16,
    Qgis.Int16: np.int16,
    Qgis.UInt32: np.uint32,
    Qgis.Int32: np.int32,
    Qgis.Float32: np.float32,
    Qgis.Float64: np.float64,
}


def run_segmentation(
    request: SegmentRequest,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
) -> RunOutcome:
    """Run one query end to end and write ``request.out_path``.

    Args:
        request: The run (plain data).
        progress: Receives percent done in ``[0, 100]``.
        is_cancelled: Polled between steps and by the backend between tiles.

    Returns:
        What was produced.

    Raises:
        backend.errors.Cancelled: ``is_cancelled()`` became True.
        backend.errors.Rs2SamError: a user-fixable problem (message is shown as-is).
    """
    report = progress or (lambda _p: None)
    cancelled = is_cancelled or (lambda: False)
    errors = backend_module("errors")
    start = time.perf_counter()

    report(0.0)
    segmenter, load_seconds = CACHE.get(request.model, request.device, request.threads)
    if cancelled():
        raise errors.Cancelled("cancelled after loading the model")
    report(LOAD_SHARE)

    def backend_progress(percent: float) -> None:
        report(LOAD_SHARE + (100.0 - LOAD_SHARE) * max(0.0, min(100.0, percent)) / 100.0)

    options: dict[str, Any] = {
        "segmenter": segmenter,
        "out_path": request.out_path,
        "threshold": request.threshold,
        "min_area_m2": request.min_area_m2,
        "progress": backend_progress,
        "is_cancelled": cancelled,
    }
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
    report(100.0)
    return RunOutcome(
        out_path=str(result.out_path or request.out_path),
        polygons=len(result.polygons),
        area_m2=float(_total_area(result)),
        seconds=time.perf_counter() - start,
        load_seconds=load_seconds,
        model_name=str(getattr(segmenter, "name", "custom")),
    )


def _total_area(result: Any) -> float:
    """Sum of the per-polygon ``area_m2`` attribute of a SegmentResult."""
    areas = getattr(result, "areas_m2", None)
    if areas is None:
        records = getattr(result, "attributes", None) or getattr(result, "records", None) or []
        areas = [r.get("area_m2", 0.0) for r in records if isinstance(r, dict)]
    return float(sum(areas))


def read_provider_pixels(source: ProviderSource) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read RGB pixels through the cloned provider (worker thread).

    Args:
        source: Provider clone, extent, size and bands.

    Returns:
        ``(image, geotransform)``: ``image`` is ``(H, W, C)`` (uint8 RGB for ARGB32 providers
        such as XYZ/WMS, the native dtype of the first three bands otherwise; nodata/transparent
        pixels are 0), ``geotransform`` is GDAL-ordered ``(x0, dx, 0, y0, 0, -dy)`` in
        ``source.crs_wkt``.
    """
    provider = source.provider
    minx, miny, maxx, maxy = source.extent
    rect = QgsRectangle(minx, miny, maxx, maxy)
    width, height = source.width, source.height
    transform = (minx, (maxx - minx) / width, 0.0, maxy, 0.0, -(maxy - miny) / height)
    if provider.dataType(1) in (Qgis.ARGB32, Qgis.ARGB32_Premultiplied):
        block = provider.block(1, rect, width, height)
        argb = np.frombuffer(bytes(block.data()), dtype=np.uint32).reshape(height, width)
        alpha = (argb >> 24) & 0xFF
        rgb = np.stack([(argb >> 16) & 0xFF, (argb >> 8) & 0xFF, argb & 0xFF], axis=-1)
        if provider.dataType(1) == Qgis.ARGB32_Premultiplied:
            scale = np.where(alpha > 0, 255.0 / np.maximum(alpha, 1), 0.0)[..., None]
            rgb = np.clip(rgb * scale, 0, 255)
        rgb[alpha == 0] = 0
        return rgb.astype(np.uint8), transform
    bands = [b for b in source.bands if b <= provider.bandCount()] or [1]
    planes = []
    for band in bands:
        block = provider.block(band, rect, width, height)
        dtype = _NUMPY_TYPES.get(block.dataType())
        if dtype is None:
            raise backend_module("errors").UnsupportedRasterError(
                f"band {band} has QGIS data type {block.dataType()}, which the plugin cannot read; "
                "export the layer to GeoTIFF (Raster > Conversion > Translate) and use that"
            )
        plane = np.frombuffer(bytes(block.data()), dtype=dtype).reshape(height, width).copy()
        if block.hasNoDataValue():
            plane[plane == block.noDataValue()] = 0
        planes.append(plane)
    while len(planes) < 3:  # grey layers: repeat the band so the model sees RGB
        planes.append(planes[-1])
    return np.stack(planes[:3], axis=-1), transform


def _segment_provider_pixels(
    request: SegmentRequest, source: ProviderSource, options: dict[str, Any], cancelled: CancelFn
) -> Any:
    """Read the pixels, then hand them to the backend with their geotransform and CRS."""
    image, transform = read_provider_pixels(source)
    if cancelled():
        raise backend_module("errors").Cancelled("cancelled after reading the pixels")
    backend = get_backend()
    segment_array = getattr(backend, "segment_array", None)
    if segment_array is not None:
        return segment_array(image, transform, source.crs_wkt, request.text, **options)
    # Fallback until the backend has an in-memory entry point: a temporary GeoTIFF.
    from osgeo import gdal

    with tempfile.TemporaryDirectory(prefix="rs2sam_pixels_") as tmp:
        path = os.path.join(tmp, "pixels.tif")
        height, width, count = image.shape
        gdal_type = gdal.GDT_Byte if image.dtype == np.uint8 else gdal.GDT_Float32
        data = image if image.dtype == np.uint8 else image.astype(np.float32)
        dataset = gdal.GetDriverByName("GTiff").Create(path, width, height, count, gdal_type)
        dataset.SetGeoTransform(transform)
        dataset.SetProjection(source.crs_wkt)
        for index in range(count):
            dataset.GetRasterBand(index + 1).WriteRaster(
                0, 0, width, height, np.ascontiguousarray(data[..., index]).tobytes()
            )
        dataset = None  # close and flush
        return backend.segment_raster(path, request.text, bbox=None, bbox_crs=None, **options)
