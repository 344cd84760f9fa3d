"""``rs2sam:segmentbytext``: raster + text (+ extent) -> polygon layer, for batch and modeler.

``prepareAlgorithm`` (main thread) copies what it needs out of the layer; ``processAlgorithm``
(worker thread in the toolbox) runs :func:`~rs2sam_qgis.runner.run_segmentation`. Nothing here
creates widgets, so ``qgis_process`` can run it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsGeometry,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorFileWriter,
)
from qgis.PyQt.QtGui import QIcon

from .._backend import backend_module
from ..deps import check_dependencies
from ..i18n import tr
from ..layer_input import InputProblem, crs_string, file_source, provider_source
from ..log import log_info
from ..models import choice_problem, parse_model_choice
from ..request import SegmentRequest
from ..runner import run_on_backend_thread
from ..settings import default_threads
from .parameters import segment_parameters

ICON = Path(__file__).resolve().parents[1] / "icons" / "segment_by_text.svg"


def _stage_reporter(feedback: QgsProcessingFeedback) -> Any:
    """Stage texts as Processing progress text (tiles: only the first, or the log floods)."""

    def report(key: str, text: str) -> None:
        if key != "tiles" or text.startswith(tr("Segmenting: tile {k} of").format(k=1)):
            feedback.setProgressText(text)

    return report


def empty_text_message() -> str:
    """The message for an empty TEXT (a function: ``tr`` needs the translator installed)."""
    return tr("TEXT is empty: describe what to segment, e.g. 'the buildings by the river'.")


class SegmentByTextAlgorithm(QgsProcessingAlgorithm):
    """Segment what a sentence describes in a raster layer and write the polygons."""

    INPUT = "INPUT"
    TEXT = "TEXT"
    EXTENT = "EXTENT"
    AOI = "AOI"
    CHECKPOINT = "CHECKPOINT"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    GSD = "GSD"
    DEVICE = "DEVICE"
    THREADS = "THREADS"
    PRECISION = "PRECISION"
    PIXEL_SIZE = "PIXEL_SIZE"
    MODEL_CONFIG = "MODEL_CONFIG"
    ALLOW_LARGE = "ALLOW_LARGE"
    POINTS = "POINTS"
    OUTPUT = "OUTPUT"
    POLYGONS = "POLYGONS"
    AREA_M2 = "AREA_M2"

    def __init__(self) -> None:
        super().__init__()
        self._request: SegmentRequest | None = None
        self._destination = ""
        self._tmp_dir = ""

    # ------------------------------------------------------------------ metadata
    def name(self) -> str:
        """Algorithm id within the provider."""
        return "segmentbytext"

    def displayName(self) -> str:
        """Name in the toolbox."""
        return tr("Segment by text")

    def shortDescription(self) -> str:
        """One line in the toolbox tooltip."""
        return tr("Polygons of what a sentence describes, from a local RS2-SAM 2 model.")

    def tags(self) -> list[str]:
        """Search keywords."""
        return ["segment", "sam", "sam2", "text", "referring", "ai", "deep learning", "vectorize"]

    def icon(self) -> QIcon:
        """The plugin icon."""
        return QIcon(str(ICON))

    def shortHelpString(self) -> str:
        """Help panel text."""
        return tr(
            "Runs the RS2-SAM 2 referring segmentation model on the raster layer (optionally only "
            "inside EXTENT) and writes one polygon per object it finds for the TEXT, e.g. "
            "'the storage tanks next to the harbor'. Polygons are in the raster's CRS with the "
            "fields prompt, score (mean probability), area_m2 (true ground area), model and "
            "checkpoint_sha256.\n\n"
            "CHECKPOINT: a .safetensors checkpoint; empty = the weights bundled with the plugin.\n"
            "THRESHOLD: probability above which a pixel belongs to the object.\n"
            "MIN_AREA: drop polygons smaller than this many m².\n"
            "GSD: working ground resolution in m/px the image is resampled to (results do not "
            "depend on the layer's resolution); 0 = the model's own, per concept of the text "
            "when the weights store it (bundled weights: vehicles 0.25, most others 1 m/px).\n"
            "DEVICE: auto, cpu, cuda or mps. THREADS: CPU threads for the model.\n"
            "PRECISION: auto (default; the fastest mode within 2 % mask IoU of fp32 on this "
            "device), fp32, bf16 (GPU, or a CPU with AVX-512 BF16 / AMX) or int8 (CPU).\n"
            "PIXEL_SIZE (advanced): read resolution, in layer CRS units, for layers without a "
            "local file (WMS/XYZ); 0 = native size when known.\n"
            "POINTS (advanced): clicks next to the text, 'x,y,+;x,y,-' in the raster's CRS "
            "(+ belongs, - does not), e.g. the clicks field of a refined answer.\n"
            "OUTPUT: an existing file is replaced, as with every Processing algorithm (the "
            "rs2sam command line instead refuses unless --overwrite is given).\n\n"
            "Needs torch, sam2 and open_clip_torch in QGIS's Python: Raster > RS2-SAM > "
            "Install dependencies… installs them; the error message also gives the commands."
        )

    def helpUrl(self) -> str:
        """Online documentation."""
        return "https://github.com/rs2sam-qgis/rs2sam_qgis/blob/main/docs/plugin.md"

    def createInstance(self) -> SegmentByTextAlgorithm:
        """A fresh copy for each run (Processing requirement)."""
        return SegmentByTextAlgorithm()

    # ------------------------------------------------------------------ parameters
    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters (ids are part of the public contract; see parameters.py)."""
        params, outputs = segment_parameters(self)
        for param in params:
            self.addParameter(param)
        for output in outputs:
            self.addOutput(output)

    # ------------------------------------------------------------------ running
    def checkParameterValues(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """Problems found before the run start are reported once, in words.

        An empty TEXT gets its own message (QGIS's is "Incorrect parameter value for TEXT"), and
        an EXTENT outside the raster is refused here instead of failing in the backend (which
        ``qgis_process`` prints three times: log, feedback and result).
        """
        if not self.parameterAsString(parameters, self.TEXT, context).strip():
            return False, empty_text_message()
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        problem = self._extent_problem(parameters, context)
        return (False, problem) if problem else (True, "")

    def _extent_problem(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        if parameters.get(self.EXTENT) in (None, ""):
            return ""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            return ""  # INPUT's own check reports it
        rect = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
        if rect.isEmpty() or rect.intersects(layer.extent()):
            return ""
        bounds = layer.extent()
        return tr(
            "EXTENT does not overlap {layer!r}, whose extent is ({xmin:.10g}, {ymin:.10g}, "
            "{xmax:.10g}, {ymax:.10g}) in {crs}; give an extent inside it, or none for the "
            "whole layer."
        ).format(
            layer=layer.name(),
            xmin=bounds.xMinimum(),
            ymin=bounds.yMinimum(),
            xmax=bounds.xMaximum(),
            ymax=bounds.yMaximum(),
            crs=layer.crs().authid() or layer.crs().description(),
        )

    def prepareAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> bool:
        """Main thread: copy everything the run needs out of the layer."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            raise QgsProcessingException(tr("INPUT is not a valid raster layer."))
        text = " ".join(self.parameterAsString(parameters, self.TEXT, context).split())
        if not text:
            raise QgsProcessingException(empty_text_message())
        choice = parse_model_choice(
            self.parameterAsFile(parameters, self.CHECKPOINT, context),
            self.parameterAsString(parameters, self.MODEL_CONFIG, context),
        )
        problem = choice_problem(choice)
        if problem:
            raise QgsProcessingException(problem)
        bbox, bbox_crs = None, None
        if parameters.get(self.EXTENT) not in (None, ""):
            crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            if not crs.isValid():
                crs = layer.crs()
            rect: QgsRectangle = self.parameterAsExtent(parameters, self.EXTENT, context, crs)
            if not rect.isEmpty():
                bbox = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
                bbox_crs = crs_string(crs)
        aoi_wkt, aoi_crs = None, None
        if parameters.get(self.AOI) not in (None, ""):
            aoi_source = self.parameterAsSource(parameters, self.AOI, context)
            if aoi_source is None:
                raise QgsProcessingException(tr("AOI is not a readable polygon layer."))
            parts = [
                QgsGeometry(f.geometry())
                for f in aoi_source.getFeatures()
                if f.hasGeometry() and not f.geometry().isEmpty()
            ]
            if not parts:
                raise QgsProcessingException(
                    tr("AOI has no polygons (or none selected); give polygon features.")
                )
            union = QgsGeometry.unaryUnion(parts)
            aoi_wkt, aoi_crs = union.asWkt(), crs_string(aoi_source.sourceCrs())
            if bbox is None:  # the AOI's bounds are the extent
                rect = union.boundingBox()
                bbox = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
                bbox_crs = aoi_crs
        source = file_source(layer)
        if source is None:
            from ..layer_input import AreaChoice

            pixel = self.parameterAsDouble(parameters, self.PIXEL_SIZE, context)
            if pixel <= 0 and bbox is not None:
                pixel = layer.rasterUnitsPerPixelX() if layer.dataProvider().xSize() else 0.0
            if pixel <= 0 and bbox is not None:
                raise QgsProcessingException(
                    tr(
                        "{layer!r} has no local file and no native pixel size: set PIXEL_SIZE "
                        "(read resolution in layer CRS units)."
                    ).format(layer=layer.name())
                )
            try:
                source = provider_source(
                    layer, AreaChoice(bbox, bbox_crs), pixel or 1.0, layer.crs()
                )
            except InputProblem as exc:
                raise QgsProcessingException(str(exc)) from exc
        self._destination = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        _refuse_input_as_output(self._destination, layer)
        self._tmp_dir = tempfile.mkdtemp(prefix="rs2sam_alg_")
        self._request = SegmentRequest(
            text=text,
            source=source,
            bbox=bbox,
            bbox_crs=bbox_crs,
            threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
            min_area_m2=self.parameterAsDouble(parameters, self.MIN_AREA, context),
            model=choice,
            device=self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto",
            threads=self.parameterAsInt(parameters, self.THREADS, context) or default_threads(),
            precision=self.parameterAsEnumString(parameters, self.PRECISION, context) or "auto",
            out_path=os.path.join(self._tmp_dir, "result.gpkg"),
            layer_name=text,
            raster_layer_id=layer.id(),
            source_name=layer.name(),
            aoi_wkt=aoi_wkt,
            aoi_crs=aoi_crs,
            gsd_m=self.parameterAsDouble(parameters, self.GSD, context) or None,
            allow_large=self.parameterAsBool(parameters, self.ALLOW_LARGE, context),
            points=self.parameterAsString(parameters, self.POINTS, context) or "",
        )
        return True

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        """Worker thread: run the model and write OUTPUT."""
        request = self._request
        if request is None:
            raise QgsProcessingException(tr("The algorithm was not prepared."))
        report = check_dependencies()
        if not report.ok:
            raise QgsProcessingException(report.message())
        if request.model.is_developer_choice:
            feedback.pushWarning(
                tr("Developer model {label}: results are not meaningful.").format(
                    label=request.model.label
                )
            )
        errors = backend_module("errors")
        feedback.pushInfo(
            tr("Segmenting {text!r} with {model}…").format(
                text=request.text, model=request.model.label
            )
        )
        try:
            outcome = run_on_backend_thread(
                request, feedback.setProgress, feedback.isCanceled, _stage_reporter(feedback)
            )
            self._deliver(request.out_path, self._destination)
        except errors.Cancelled as exc:
            raise QgsProcessingException(tr("Cancelled; no output was written.")) from exc
        except errors.Rs2SamError as exc:
            # Processing reports the exception itself (log, dialog, qgis_process): no second copy
            raise QgsProcessingException(str(exc)) from exc
        finally:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
        message = tr("{n} polygon(s), {area:.1f} m², {s:.1f} s (model load {l:.1f} s)").format(
            n=outcome.polygons, area=outcome.area_m2, s=outcome.seconds, l=outcome.load_seconds
        )
        feedback.pushInfo(message)
        for warning in outcome.warnings:
            feedback.pushWarning(warning)
        if outcome.quality_note:  # what the model's answers on this concept are worth
            (feedback.pushWarning if outcome.quality_weak else feedback.pushInfo)(
                outcome.quality_note
            )
        log_info(f"segmentbytext {request.text!r}: {message} -> {self._destination}")
        return {
            self.OUTPUT: self._destination,
            self.POLYGONS: outcome.polygons,
            self.AREA_M2: outcome.area_m2,
        }

    @staticmethod
    def _deliver(tmp_gpkg: str, destination: str) -> None:
        """Move (GeoPackage) or convert (other formats) the backend's output to OUTPUT."""
        from osgeo import gdal

        if not os.path.isfile(tmp_gpkg):
            raise backend_module("errors").OutputError(
                tr("the backend wrote no output file at {path}").format(path=tmp_gpkg)
            )
        Path(destination).parent.mkdir(parents=True, exist_ok=True)
        if destination.lower().endswith(".gpkg"):
            if os.path.exists(destination):
                os.remove(destination)  # Processing outputs overwrite
            shutil.move(tmp_gpkg, destination)
            return
        driver = QgsVectorFileWriter.driverForExtension(Path(destination).suffix.lstrip("."))
        if not driver:
            raise backend_module("errors").OutputError(
                tr("no vector format for {path!r}; use .gpkg, .shp, .geojson, .fgb ...").format(
                    path=destination
                )
            )
        if os.path.exists(destination):
            gdal.GetDriverByName(driver).Delete(destination)
        result = gdal.VectorTranslate(destination, tmp_gpkg, format=driver)
        if result is None:
            raise backend_module("errors").OutputError(
                tr("could not convert the result to {path!r} ({driver})").format(
                    path=destination, driver=driver
                )
            )
        result = None  # close


def _refuse_input_as_output(destination: str, layer: QgsRasterLayer) -> None:
    """OUTPUT must never be the input raster's file (Processing would delete it first).

    The check itself is the backend's (``pipeline.plan.check_not_an_input``: links, case).
    """
    decoded = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    inputs = [layer.source(), str(decoded.get("path") or "")]
    path = destination.split("|", 1)[0]
    if path.lower().startswith("ogr:"):
        return  # a layer in a database connection: not a file
    try:
        backend_module("pipeline.plan").check_not_an_input(path, [i for i in inputs if i])
    except backend_module("errors").OutputError as exc:
        raise QgsProcessingException(str(exc)) from exc

