"""``rs2sam:adaptmodel``: "Adapt the model to my imagery" (toolbox, batch mode, modeler).

Raster layer(s) + example polygons (their selection, when the source is a selection) + a text
(or an attribute with each example's text) -> an adapted ``.safetensors`` checkpoint, usable as
CHECKPOINT of ``rs2sam:segmentbytext`` and in the dock. ``prepareAlgorithm`` (main thread)
copies the examples into a temporary GeoPackage; ``processAlgorithm`` runs the engine
(``training.adapt``) with progress and cancel. Nothing is written on error or cancel.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsRasterLayer,
)
from qgis.PyQt.QtGui import QIcon

from .._backend import backend_module
from ..adapt_input import AdaptInputProblem, AdaptJob, make_job, raster_paths, run_job
from ..deps import check_dependencies
from ..i18n import tr
from ..log import log_info
from ..settings import default_threads

ICON = Path(__file__).resolve().parents[1] / "icons" / "segment_by_text.svg"


class AdaptModelAlgorithm(QgsProcessingAlgorithm):
    """Teach the model what the user's polygons show in their imagery."""

    INPUT = "INPUT"
    EXAMPLES = "EXAMPLES"
    TEXT = "TEXT"
    TEXT_FIELD = "TEXT_FIELD"
    LABELLED_AREA = "LABELLED_AREA"
    BASE = "BASE"
    MINUTES = "MINUTES"
    THREADS = "THREADS"
    MODEL_CONFIG = "MODEL_CONFIG"
    MAX_STEPS = "MAX_STEPS"
    OUTPUT = "OUTPUT"
    IOU_BEFORE = "HOLDOUT_IOU_BEFORE"
    IOU_AFTER = "HOLDOUT_IOU_AFTER"

    def __init__(self) -> None:
        super().__init__()
        self._job: AdaptJob | None = None

    def name(self) -> str:
        """Algorithm id within the provider."""
        return "adaptmodel"

    def displayName(self) -> str:
        """Name in the toolbox."""
        return tr("Adapt the model to my imagery")

    def shortDescription(self) -> str:
        """One line in the toolbox tooltip."""
        return tr("Teach the model what your example polygons show, in a few CPU minutes.")

    def tags(self) -> list[str]:
        """Search keywords."""
        return ["train", "adapt", "fine-tune", "teach", "examples", "deep learning", "sam"]

    def icon(self) -> QIcon:
        """The plugin icon."""
        return QIcon(str(ICON))

    def shortHelpString(self) -> str:
        """Help panel text."""
        return tr(
            "Trains the model for a few minutes on tiles of INPUT around the EXAMPLES polygons "
            "(only the selected features when the layer has a selection and 'Selected features "
            "only' is ticked), so that the TEXT (e.g. 'water', 'the buildings') finds them in "
            "your imagery. The text must use words the base model knows. A strip of the "
            "examples is held out and never trained on; the IoU there before and after is "
            "reported (outputs HOLDOUT_IOU_BEFORE / _AFTER).\n\n"
            "TEXT_FIELD: instead of one TEXT, an attribute with each example's text.\n"
            "LABELLED_AREA (optional): polygons inside which every object is drawn; there, "
            "whatever no example covers is background (stronger than the default, which "
            "samples background only away from the examples).\n"
            "BASE: the checkpoint to adapt; empty = the bundled weights.\n"
            "MINUTES: time budget of the whole run.\n"
            "OUTPUT: the adapted model (.safetensors). Use it as CHECKPOINT of Segment by text "
            "or in the dock's Model box. It records its parent, the texts, the examples and "
            "the scores."
        )

    def createInstance(self) -> AdaptModelAlgorithm:
        """A fresh copy for each run."""
        return AdaptModelAlgorithm()

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Declare the parameters and outputs."""
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUT, tr("Raster layer(s) the examples are drawn on"),
            QgsProcessing.SourceType.TypeRaster))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.EXAMPLES, tr("Example polygons"), [QgsProcessing.SourceType.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterString(
            self.TEXT, tr("Text the examples show (e.g. water)"), "", False, True))
        self.addParameter(QgsProcessingParameterField(
            self.TEXT_FIELD, tr("…or the attribute with each example's text"), None,
            self.EXAMPLES, QgsProcessingParameterField.DataType.String, False, True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.LABELLED_AREA, tr("Fully labelled area (optional)"),
            [QgsProcessing.SourceType.TypeVectorPolygon], None, True))
        self.addParameter(QgsProcessingParameterFile(
            self.BASE, tr("Base checkpoint (empty = bundled weights)"),
            QgsProcessingParameterFile.Behavior.File, "safetensors", None, True))
        self.addParameter(QgsProcessingParameterNumber(
            self.MINUTES, tr("Time budget (minutes)"), QgsProcessingParameterNumber.Type.Double,
            5.0, False, 0.0, 600.0))
        threads = QgsProcessingParameterNumber(
            self.THREADS, tr("CPU threads"), QgsProcessingParameterNumber.Type.Integer,
            default_threads(), False, 1, 256)
        threads.setFlags(threads.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(threads)
        for pid, label, kind in ((self.MODEL_CONFIG, "Developer base model (random init)", 0),
                                 (self.MAX_STEPS, "Developer step limit", 1)):
            param: QgsProcessingParameterDefinition = (
                QgsProcessingParameterString(pid, tr(label), "", False, True) if kind == 0 else
                QgsProcessingParameterNumber(
                    pid, tr(label), QgsProcessingParameterNumber.Type.Integer, 0, True, 0
                ))
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.Flag.FlagHidden)
            self.addParameter(param)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, tr("Adapted model"), tr("Checkpoints (*.safetensors)")))
        self.addOutput(QgsProcessingOutputNumber(self.IOU_BEFORE, tr("Hold-out IoU before (%)")))
        self.addOutput(QgsProcessingOutputNumber(self.IOU_AFTER, tr("Hold-out IoU after (%)")))

    def prepareAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> bool:
        """Main thread: raster paths, examples copied to a temporary GeoPackage."""
        layers = [lyr for lyr in self.parameterAsLayerList(parameters, self.INPUT, context)
                  if isinstance(lyr, QgsRasterLayer)]
        examples = self.parameterAsSource(parameters, self.EXAMPLES, context)
        if examples is None:
            raise QgsProcessingException(tr("EXAMPLES is not a readable polygon layer."))
        area = None
        if parameters.get(self.LABELLED_AREA) not in (None, ""):
            area = self.parameterAsSource(parameters, self.LABELLED_AREA, context)
        fields = self.parameterAsFields(parameters, self.TEXT_FIELD, context)
        minutes = self.parameterAsDouble(parameters, self.MINUTES, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        options = {
            "budget_s": minutes * 60.0,
            "base": self.parameterAsFile(parameters, self.BASE, context) or None,
            "config": self.parameterAsString(parameters, self.MODEL_CONFIG, context) or None,
            "max_steps": self.parameterAsInt(parameters, self.MAX_STEPS, context),
            "threads": self.parameterAsInt(parameters, self.THREADS, context) or None,
            "overwrite": True,  # Processing outputs replace existing files (never an input)
        }
        try:
            self._job = make_job(
                raster_paths(layers), examples.getFeatures(), examples.sourceCrs(),
                self.parameterAsString(parameters, self.TEXT, context),
                fields[0] if fields else "", area.getFeatures() if area else None,
                area.sourceCrs() if area else None, out, **options)
        except AdaptInputProblem as exc:
            raise QgsProcessingException(str(exc)) from exc
        return True

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Worker thread: adapt and write OUTPUT."""
        job = self._job
        if job is None:
            raise QgsProcessingException(tr("The algorithm was not prepared."))
        report = check_dependencies()
        if not report.ok:
            shutil.rmtree(job.tmp_dir, ignore_errors=True)
            raise QgsProcessingException(report.message())
        errors = backend_module("errors")
        shown = [""]

        def progress(stage: str, fraction: float, text: str) -> None:
            feedback.setProgress(100.0 * fraction)
            if text != shown[0]:
                shown[0] = text
                feedback.setProgressText(text)

        try:
            result = run_job(job, progress, feedback.isCanceled)
        except errors.Cancelled as exc:
            raise QgsProcessingException(tr("Cancelled; no model was written.")) from exc
        except errors.Rs2SamError as exc:
            raise QgsProcessingException(str(exc)) from exc
        except ImportError as exc:
            raise QgsProcessingException(str(exc)) from exc
        for note in result.notes:
            feedback.pushWarning(note)
        feedback.pushInfo(result.summary())
        log_info(f"adaptmodel: {result.summary()} -> {result.out_path}")
        return {self.OUTPUT: result.out_path, self.IOU_BEFORE: result.before["iou"],
                self.IOU_AFTER: result.after["iou"]}
