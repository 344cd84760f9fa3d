"""Main-thread helpers for "Adapt the model to my imagery": layers -> files the engine reads.

The engine (``training.adapt``) reads rasters and vector files by path. Example polygons may
live in a memory layer or be a selection, so they are copied (main thread) into a temporary
GeoPackage with one text attribute; the run itself touches no QGIS object.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransformContext,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ._training import training_module
from .i18n import tr
from .layer_input import local_raster_path

TEXT_FIELD = "rs2sam_text"


class AdaptInputProblem(Exception):
    """A user-readable problem with the inputs (shown in the message bar / Processing)."""


@dataclass(frozen=True)
class AdaptJob:
    """Plain data for one adaptation (safe to hand to a worker thread).

    Attributes:
        spec: Keyword arguments of ``training.adapt.spec.AdaptSpec``.
        tmp_dir: Temporary folder of the copied examples (removed after the run).
    """

    spec: dict[str, Any]
    tmp_dir: str


def raster_paths(layers: Iterable[QgsRasterLayer]) -> tuple[str, ...]:
    """Local file paths of raster layers.

    Raises:
        AdaptInputProblem: A layer that is not a local file (web, database).
    """
    paths = []
    for layer in layers:
        path = local_raster_path(layer)
        if path is None:
            raise AdaptInputProblem(
                tr("{layer!r} is not a local raster file; adapting reads the file itself. "
                   "Save it as a GeoTIFF first.").format(layer=layer.name())
            )
        paths.append(path)
    if not paths:
        raise AdaptInputProblem(tr("No raster layer given: choose the raster the examples are "
                                   "drawn on."))
    return tuple(paths)


def write_polygons(path: str, features: Iterable[QgsFeature], crs: QgsCoordinateReferenceSystem,
                   text_of: Callable[[QgsFeature], str] | None) -> int:
    """Write polygon features to a GeoPackage (with :data:`TEXT_FIELD` when ``text_of``).

    Returns:
        The number of features written.
    """
    fields = QgsFields()
    if text_of is not None:
        fields.append(QgsField(TEXT_FIELD, QVariant.String))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    writer = QgsVectorFileWriter.create(path, fields, QgsWkbTypes.Type.MultiPolygon, crs,
                                        QgsCoordinateTransformContext(), options)
    if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
        raise AdaptInputProblem(writer.errorMessage())
    n = 0
    for feature in features:
        if not feature.hasGeometry() or feature.geometry().isEmpty():
            continue
        out = QgsFeature(fields)
        geometry = feature.geometry()
        geometry.convertToMultiType()
        out.setGeometry(geometry)
        if text_of is not None:
            out.setAttribute(0, text_of(feature))
        writer.addFeature(out)
        n += 1
    del writer  # closes the file
    return n


def make_job(rasters: tuple[str, ...], examples: Iterable[QgsFeature],
             examples_crs: QgsCoordinateReferenceSystem, text: str, text_field: str,
             area: Iterable[QgsFeature] | None, area_crs: QgsCoordinateReferenceSystem | None,
             out: str, **options: Any) -> AdaptJob:
    """Copy the examples (and labelled area) to a temporary folder and describe the run.

    Args:
        rasters: Raster files.
        examples: Example polygon features (already filtered to the selection).
        examples_crs: Their CRS.
        text: One text for all (used when ``text_field`` is empty).
        text_field: Attribute with each example's text ("" = use ``text``).
        area: Features of the fully labelled area, or None.
        area_crs: Its CRS.
        out: Output ``.safetensors``.
        **options: Other ``AdaptSpec`` fields (``budget_s``, ``base``, ``threads``, ...).

    Raises:
        AdaptInputProblem: Neither a text nor a text field.
    """
    if not text.strip() and not text_field:
        raise AdaptInputProblem(tr("Give the text the examples show (e.g. 'water'), or the "
                                   "attribute that holds each example's text."))
    tmp_dir = tempfile.mkdtemp(prefix="rs2sam_adapt_")
    path = os.path.join(tmp_dir, "examples.gpkg")
    text_of = None
    if text_field:
        def text_of(f: QgsFeature) -> str:
            value = f[text_field]
            return "" if value is None or str(value) == "NULL" else str(value)
    write_polygons(path, examples, examples_crs, text_of)
    spec: dict[str, Any] = {"rasters": rasters, "examples": path, "out": out, **options}
    if text_field:
        spec["text_field"] = TEXT_FIELD
    else:
        spec["text"] = text
    if area is not None and area_crs is not None:
        area_path = os.path.join(tmp_dir, "labelled_area.gpkg")
        write_polygons(area_path, area, area_crs, None)
        spec["labelled_area"] = area_path
    return AdaptJob(spec, tmp_dir)


def run_job(job: AdaptJob, progress: Callable[[str, float, str], None],
            is_cancelled: Callable[[], bool]) -> Any:
    """Worker thread: run the engine (``training.adapt.engine.adapt``); returns its result.

    Raises:
        backend.errors.Rs2SamError: Bad input or cancel (nothing written).
    """
    import shutil

    from .runner import call_on_backend_thread

    try:
        return call_on_backend_thread(_adapt, job, progress, is_cancelled)
    finally:
        shutil.rmtree(job.tmp_dir, ignore_errors=True)


def _adapt(job: AdaptJob, progress: Callable[[str, float, str], None],
           is_cancelled: Callable[[], bool]) -> Any:
    """Backend thread: native libraries isolated as for a segmentation, then the engine."""
    from .native_libs import isolate_native_libraries, prepare_torch_stack

    isolate_native_libraries()
    prepare_torch_stack()
    spec_module = training_module("adapt.spec")
    engine = training_module("adapt.engine")
    return engine.adapt(spec_module.AdaptSpec(**job.spec), progress, is_cancelled)
