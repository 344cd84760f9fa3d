"""Dock part: "Teach from these features" — adapt the model to the user's polygons.

The button sits beside Run/Cancel. It takes the selected features of the active polygon layer
(or all of them when none is selected) as examples of the dock's text ("Find"), on the dock's
raster, and adapts the dock's model (the Checkpoint box, or the bundled weights) in an
:class:`AdaptTask`: staged progress in the dock (sampling, training minute k of n, validating),
the dock's Cancel stops it (nothing is written), and at the end the hold-out IoU before/after
goes to the message bar and the new checkpoint into the Checkpoint box, so the next Run uses it.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path
from typing import Any

from qgis.core import Qgis, QgsApplication, QgsTask, QgsVectorLayer, QgsWkbTypes
from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtWidgets import QPushButton

from .._backend import backend_module
from ..adapt_input import AdaptInputProblem, AdaptJob, make_job, raster_paths, run_job
from ..i18n import tr
from ..log import log_error, log_info

__all__ = ["AdaptTask", "TeachPart"]

DEFAULT_MINUTES = 5.0


class AdaptTask(QgsTask):
    """Runs one adaptation off the GUI thread; ``finished()`` emits one outcome signal.

    Signals:
        stage_changed(str, str): stage key and text (from the worker thread, delivered queued).
        succeeded(object): the engine's ``AdaptResult``.
        failed(str, str): user message and details for the log.
        cancelled(): stopped by the user; nothing was written.
    """

    stage_changed = pyqtSignal(str, str)
    succeeded = pyqtSignal(object)
    failed = pyqtSignal(str, str)
    cancelled = pyqtSignal()

    def __init__(self, job: AdaptJob, text: str) -> None:
        super().__init__(tr("Teach: {text}").format(text=text), QgsTask.Flag.CanCancel)
        self.job = job
        self.result: Any = None
        self.error = ("", "")
        self.was_cancelled = False

    def run(self) -> bool:
        """Worker thread: never touches the project or widgets, never raises."""
        try:
            errors = backend_module("errors")

            def progress(stage: str, fraction: float, text: str) -> None:
                self.setProgress(100.0 * fraction)
                self.stage_changed.emit(stage, text)

            try:
                self.result = run_job(self.job, progress, self.isCanceled)
            except errors.Cancelled:
                self.was_cancelled = True
                return False
            except errors.Rs2SamError as exc:
                self.error = (str(exc), traceback.format_exc())
                return False
            return True
        except Exception as exc:
            self.error = (tr("Adapting failed: {error}").format(error=exc),
                          traceback.format_exc())
            return False

    def finished(self, ok: bool) -> None:
        """Main thread: one outcome signal."""
        if ok and self.result is not None:
            self.succeeded.emit(self.result)
        elif self.was_cancelled or (self.isCanceled() and not self.error[0]):
            self.cancelled.emit()
        else:
            self.failed.emit(*(self.error if self.error[0] else (tr("Adapting failed."), "")))


class TeachPart(QObject):
    """The "Teach from these features" button and its task.

    Args:
        dock: The :class:`~rs2sam_qgis.dock.SegmentDock` (its text, raster, model, progress).
        iface: The QGIS interface (active layer, message bar); None = ``qgis.utils.iface``.
    """

    def __init__(self, dock: Any, iface: Any = None) -> None:
        super().__init__(dock)
        self.dock = dock
        self._iface = iface
        self.task: AdaptTask | None = None
        self.minutes = DEFAULT_MINUTES
        self.max_steps = 0  # tests: a fixed number of steps
        self.button = QPushButton(tr("Teach from these features…"), dock.body)
        self.button.setObjectName("Rs2SamTeachButton")
        self.button.setToolTip(tr(
            "Adapt the model to your imagery: the selected polygons of the active layer (or all "
            "of them) show what the text in 'Find' looks like on this raster. Takes about "
            "{minutes:g} minutes; the adapted model is then used for the next runs."
        ).format(minutes=self.minutes))
        self.button.clicked.connect(self.start)
        dock.run_part.buttons.addWidget(self.button)
        dock.cancel_requested.connect(self.cancel)

    @property
    def iface(self) -> Any:
        """The QGIS interface."""
        if self._iface is None:
            from qgis.utils import iface

            self._iface = iface
        return self._iface

    def _bar(self, text: str, level: Any, duration: int = 10) -> None:
        self.dock.set_status(text)
        self.iface.messageBar().pushMessage(tr("Teach"), text, level=level, duration=duration)

    def build_job(self) -> tuple[AdaptJob, str]:
        """The examples, raster and model of the dock (main thread).

        Raises:
            AdaptInputProblem: No text, no polygon layer, no raster, no features.
        """
        text = " ".join(self.dock.query_combo.currentText().split())
        if not text:
            raise AdaptInputProblem(tr("Type in 'Find' what the features show (e.g. 'water'), "
                                       "then click Teach."))
        layer = self.iface.activeLayer()
        if not isinstance(layer, QgsVectorLayer) or \
                layer.geometryType() != QgsWkbTypes.GeometryType.PolygonGeometry:
            raise AdaptInputProblem(tr("Make a polygon layer with your example features the "
                                       "active layer (select some, or all are used)."))
        raster = self.dock.layer_combo.currentLayer()
        rasters = raster_paths([raster] if raster is not None else [])
        ids = layer.selectedFeatureIds()
        features = layer.getSelectedFeatures() if ids else layer.getFeatures()
        dev = self.dock.model_part.dev_model(self.dock.settings.dev_models)
        if dev.startswith("standin:"):
            raise AdaptInputProblem(tr("A stand-in model cannot be taught; choose a checkpoint "
                                       "(or none for the bundled weights)."))
        config = dev.removeprefix("config:") or None
        base = None if config else (self.dock.current_settings().checkpoint or None)
        job = make_job(rasters, features, layer.crs(), text, "", None, None,
                       str(_output_path(rasters[0], text)), budget_s=self.minutes * 60.0,
                       base=base, config=config, max_steps=self.max_steps,
                       threads=int(self.dock.threads_spin.value()) or None)
        return job, text

    def start(self) -> None:
        """Start an adaptation (refused while one or a segmentation runs)."""
        if self.task is not None or not self.dock.run_button.isEnabled():
            self._bar(
                tr("A run is in progress; wait for it or cancel it."), Qgis.MessageLevel.Warning
            )
            return
        try:
            job, text = self.build_job()
        except AdaptInputProblem as exc:
            self._bar(str(exc), Qgis.MessageLevel.Warning)
            return
        task = AdaptTask(job, text)
        task.progressChanged.connect(self.dock.set_progress)
        task.stage_changed.connect(lambda _key, message: self.dock.set_status(message))
        task.succeeded.connect(self._on_succeeded)
        task.failed.connect(self._on_failed)
        task.cancelled.connect(self._on_cancelled)
        self.task = task
        self.dock.set_running(True)
        self.button.setEnabled(False)
        self.dock.set_status(tr("Teaching '{text}'…").format(text=text))
        QgsApplication.taskManager().addTask(task)

    def cancel(self) -> None:
        """The dock's Cancel: stop the adaptation."""
        if self.task is not None:
            self.task.cancel()
            self.dock.set_status(tr("Cancelling…"))

    def _done(self) -> None:
        self.task = None
        self.button.setEnabled(True)
        self.dock.set_running(False)

    def _on_succeeded(self, result: Any) -> None:
        self._done()
        self.dock.checkpoint_widget.setFilePath(result.out_path)  # the next Run uses it
        text = tr("Adapted: hold-out IoU {before:.1f} % → {after:.1f} %. Saved as {path}; it is "
                  "now the dock's checkpoint.").format(
            before=result.before["iou"], after=result.after["iou"], path=result.out_path)
        log_info(f"teach: {result.summary()} -> {result.out_path}")
        for note in result.notes:
            log_info(f"teach: note: {note}")
        self._bar(text, Qgis.MessageLevel.Success, 15)

    def _on_failed(self, message: str, details: str) -> None:
        self._done()
        if details:
            log_error(details)
        self._bar(message, Qgis.MessageLevel.Critical)

    def _on_cancelled(self) -> None:
        self._done()
        self._bar(tr("Teaching cancelled; no model was written."), Qgis.MessageLevel.Info, 5)


def _output_path(raster: str, text: str) -> Path:
    """``<raster folder>/<raster>_<text>_adapted[_N].safetensors`` (never an existing file)."""
    src = Path(raster.split("|", 1)[0])
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:30] or "examples"
    folder = src.parent
    for n in range(1, 1000):
        suffix = "" if n == 1 else f"_{n}"
        path = folder / f"{src.stem}_{slug}_adapted{suffix}.safetensors"
        if not path.exists():
            return path
    return folder / f"{src.stem}_{slug}_adapted_last.safetensors"

