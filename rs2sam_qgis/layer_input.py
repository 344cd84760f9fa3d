"""Main-thread helpers: turn a raster layer, an extent choice and the dock's values into a request.

Everything a worker needs is copied out of QGIS objects here (paths, rectangles, CRS strings, a
cloned provider), so the task never touches a layer (PyQGIS cookbook, "Tasks").
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterDataProvider,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)

from .i18n import tr
from .request import Bounds, FileSource, ProviderSource

MAX_PROVIDER_PX = 4096
"""Largest side, in pixels, read through a data provider (web layers); larger reads are scaled."""


class InputProblem(Exception):
    """A user-fixable problem with the dock's inputs; ``str(exc)`` is shown as-is."""


@dataclass(frozen=True)
class AreaChoice:
    """Where to segment, resolved on the main thread.

    Attributes:
        bbox: Area in ``bbox_crs``; None = the whole layer.
        bbox_crs: Auth id or WKT of ``bbox``'s CRS.
        aoi_wkt: Polygon(s) to clip results to (selection mode), in ``bbox_crs``.
    """

    bbox: Bounds | None
    bbox_crs: str | None
    aoi_wkt: str | None = None


def crs_string(crs: QgsCoordinateReferenceSystem) -> str:
    """A CRS string pyproj/rasterio understand: ``EPSG:n`` when there is one, else WKT2."""
    authid = crs.authid()
    if authid.upper().startswith("EPSG:"):
        return authid
    return crs.toWkt(QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED)


def local_raster_path(layer: QgsRasterLayer) -> str | None:
    """The GDAL source of a file-based raster layer, or None (web, database, remote layers).

    Returns:
        The layer's GDAL data source string when it is served by the ``gdal`` provider from a
        local file that exists (this may be a plain path or e.g. ``GPKG:/path.gpkg:table``).
    """
    if layer.providerType() != "gdal":
        return None
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = str(parts.get("path") or "")
    if not path or path.startswith("/vsi") or not os.path.isfile(path):
        return None
    return layer.source()


def _rect_bounds(rect: QgsRectangle) -> Bounds:
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())


def resolve_area(
    mode: str,
    layer: QgsRasterLayer,
    canvas_extent: QgsRectangle,
    canvas_crs: QgsCoordinateReferenceSystem,
    aoi_layer: QgsVectorLayer | None,
) -> AreaChoice:
    """Turn the extent choice into a bbox (+ CRS, + clip polygon).

    Args:
        mode: ``"canvas"`` (visible map extent), ``"layer"`` (full layer) or ``"selection"``.
        layer: The raster to segment.
        canvas_extent: Visible map extent in ``canvas_crs``.
        canvas_crs: The map canvas (project) CRS.
        aoi_layer: Polygon layer whose selected features give the area (selection mode).

    Returns:
        The area.

    Raises:
        InputProblem: The area is empty, doesn't overlap the layer, or nothing is selected.
    """
    project = QgsProject.instance()
    if mode == "layer":
        return AreaChoice(None, None)
    if mode == "selection":
        if aoi_layer is None or not aoi_layer.isValid():
            raise InputProblem(tr("Choose the polygon layer whose selected features set the area."))
        features = aoi_layer.selectedFeatures()
        if not features:
            raise InputProblem(
                tr(
                    "Select one or more polygons in {layer!r} first (or choose another extent)."
                ).format(layer=aoi_layer.name())
            )
        geometry = QgsGeometry.unaryUnion([f.geometry() for f in features if f.hasGeometry()])
        if geometry.isEmpty():
            raise InputProblem(tr("The selected features have no geometry."))
        area_crs = aoi_layer.crs()
        bbox = geometry.boundingBox()
        _check_overlap(layer, bbox, area_crs, project)
        return AreaChoice(_rect_bounds(bbox), crs_string(area_crs), geometry.asWkt())
    if canvas_extent.isEmpty():
        raise InputProblem(tr("The map canvas has no visible extent yet; zoom to the layer."))
    _check_overlap(layer, canvas_extent, canvas_crs, project)
    return AreaChoice(_rect_bounds(canvas_extent), crs_string(canvas_crs))


def _check_overlap(
    layer: QgsRasterLayer,
    rect: QgsRectangle,
    crs: QgsCoordinateReferenceSystem,
    project: QgsProject,
) -> None:
    to_layer = QgsCoordinateTransform(crs, layer.crs(), project)
    try:
        in_layer = to_layer.transformBoundingBox(rect)
    except Exception as exc:
        raise InputProblem(
            tr("The chosen area cannot be transformed to the CRS of {layer!r}: {err}").format(
                layer=layer.name(), err=exc
            )
        ) from exc
    if not in_layer.intersects(layer.extent()):
        raise InputProblem(
            tr(
                "The chosen area does not overlap {layer!r}. Zoom to the layer or choose "
                "'Full layer'."
            ).format(layer=layer.name())
        )


def provider_source(
    layer: QgsRasterLayer,
    area: AreaChoice,
    canvas_units_per_pixel: float,
    canvas_crs: QgsCoordinateReferenceSystem,
) -> ProviderSource:
    """Read plan for a layer without a local file: extent in the layer CRS at canvas resolution.

    Args:
        layer: A raster layer (WMS, XYZ, WCS, PostGIS raster, remote COG...).
        area: From :func:`resolve_area`.
        canvas_units_per_pixel: Canvas map units per screen pixel (sets the resolution).
        canvas_crs: CRS of those map units.

    Returns:
        The plan, with a clone of the layer's data provider for the worker.

    Raises:
        InputProblem: Full-layer extent on a layer without a pixel size (web layers).
    """
    provider: QgsRasterDataProvider = layer.dataProvider()
    has_size = bool(provider.capabilities() & QgsRasterDataProvider.Capability.Size)
    project = QgsProject.instance()
    if area.bbox is None:
        if not has_size:
            raise InputProblem(
                tr(
                    "{layer!r} is a web/tile layer without a fixed size, so 'Full layer' is not "
                    "available. Use the visible map extent or a selected polygon."
                ).format(layer=layer.name())
            )
        extent = layer.extent()
        width, height = provider.xSize(), provider.ySize()
    else:
        area_crs = QgsCoordinateReferenceSystem(area.bbox_crs or "")
        rect = QgsRectangle(*area.bbox)
        extent = QgsCoordinateTransform(area_crs, layer.crs(), project).transformBoundingBox(rect)
        extent = extent.intersect(layer.extent()) if has_size else extent
        # pixel size: the canvas resolution, expressed in the layer CRS
        to_canvas = QgsCoordinateTransform(layer.crs(), canvas_crs, project)
        extent_canvas = to_canvas.transformBoundingBox(extent)
        px_w = max(1.0, extent_canvas.width() / max(canvas_units_per_pixel, 1e-12))
        px_h = max(1.0, extent_canvas.height() / max(canvas_units_per_pixel, 1e-12))
        res = math.sqrt(extent.width() * extent.height() / (px_w * px_h))
        width = max(1, round(extent.width() / res))
        height = max(1, round(extent.height() / res))
    scale = min(1.0, MAX_PROVIDER_PX / max(width, height))
    width, height = max(32, round(width * scale)), max(32, round(height * scale))
    return ProviderSource(
        provider=provider.clone(),
        extent=_rect_bounds(extent),
        width=int(width),
        height=int(height),
        crs_wkt=layer.crs().toWkt(QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED),
    )


def file_source(layer: QgsRasterLayer) -> FileSource | None:
    """A :class:`FileSource` for file-based layers, None otherwise."""
    path = local_raster_path(layer)
    return FileSource(path) if path else None


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return slug[:limit].rstrip("_") or "query"


def default_output_dir() -> Path | None:
    """Where results go when the user chose no folder: the project file's folder.

    Returns:
        The folder of the saved project, or None for an unsaved project (the caller then makes
        a temporary layer: a file in the system temp folder would make QGIS ask about
        "temporary layers" at every exit).
    """
    project_dir = QgsProject.instance().absolutePath()
    if project_dir and os.path.isdir(project_dir):
        return Path(project_dir)
    return None


def output_path(folder: Path, text: str) -> Path:
    """A new, not yet existing ``<folder>/<slug>_<timestamp>.gpkg`` (the folder is created)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{_slug(text)}_{time.strftime('%Y%m%d_%H%M%S')}"
    candidate = folder / f"{stem}.gpkg"
    counter = 2
    while candidate.exists():
        candidate = folder / f"{stem}_{counter}.gpkg"
        counter += 1
    return candidate


def memory_output_path() -> Path:
    """A temporary GeoPackage for results that end up as a memory layer."""
    return Path(tempfile.mkdtemp(prefix="rs2sam_mem_")) / "result.gpkg"
