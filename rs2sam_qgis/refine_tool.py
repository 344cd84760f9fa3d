"""The "Refine" map tool: clicks correct the last answer in place, one undo step per click.

Left click = positive ("this belongs to the answer"), right click or Shift+click = negative
("this does not"). Each click is shown as a marker (green +, red x) and queued; a
:class:`RefineTask` re-runs only the tile(s) under it on the backend thread (the backend's
``refine_raster``: same raster, extent, working resolution and model as the text run, with
every click so far) while the canvas stays usable. On the main thread the answer's layer is
edited in one edit command: the polygons that touch the re-run region are replaced, and every
feature's ``clicks`` field (and the layer's ``rs2sam/clicks`` property) records all clicks, so
``python -m backend segment ... --point`` reproduces the result. "Undo click" undoes the last
command (the exact previous geometry comes back); "Clear clicks" undoes them all.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsTask,
    QgsVectorLayer,
)
from qgis.gui import QgsMapCanvas, QgsMapTool, QgsMapToolEmitPoint, QgsVertexMarker
from qgis.PyQt.QtCore import QObject, Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor

from ._backend import backend_module
from .i18n import tr
from .log import log_error, log_info
from .request import FileSource, SegmentRequest

__all__ = ["RefineJob", "RefineMapTool", "RefineSession", "RefineTask"]

CLICKS_PROPERTY = "rs2sam/clicks"
"""Layer property: every click so far, ``"x,y,+;x,y,-"`` in the layer's (the raster's) CRS."""


class RefineMapTool(QgsMapToolEmitPoint):
    """Emits ``clicked(point, positive)`` in canvas coordinates; never edits anything itself."""

    clicked = pyqtSignal(object, bool)

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def flags(self) -> Any:
        """No zoom rectangle on Shift+drag: Shift+click is a negative click here."""
        return QgsMapTool.Flags()

    def canvasReleaseEvent(self, event: Any) -> None:
        """Left = positive; right, or Shift with any button = negative."""
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        right = event.button() == Qt.MouseButton.RightButton
        if event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        self.clicked.emit(QgsPointXY(event.mapPoint()), not (shift or right))


@dataclass(frozen=True)
class RefineJob:
    """One click's work, copied out of QGIS on the main thread (plain data)."""

    request: SegmentRequest
    clicks: tuple[tuple[float, float, bool], ...]
    fids: tuple[int, ...]
    wkbs: tuple[bytes, ...]
    scores: tuple[float, ...]


def run_refine(job: RefineJob) -> Any:
    """Backend thread: the model from the cache, then ``refine_raster``."""
    from .models import CACHE

    refine = backend_module("pipeline.refine")
    clicks_mod = backend_module("pipeline.clicks")
    req = job.request
    segmenter, _ = CACHE.get(req.model, req.device, req.threads)
    clicks = [clicks_mod.Click(x, y, p) for x, y, p in job.clicks]
    return refine.refine_raster(
        req.source.path, req.text, clicks, list(job.wkbs), list(job.scores),
        segmenter=segmenter, bbox=req.bbox, bbox_crs=req.bbox_crs, threshold=req.threshold,
        gsd_m="auto" if req.gsd_m is None else req.gsd_m,
    )


class RefineTask(QgsTask):
    """Runs :func:`run_refine` off the GUI thread; ``finished()`` emits one outcome."""

    succeeded = pyqtSignal(object)
    failed = pyqtSignal(str, str)

    def __init__(self, job: RefineJob) -> None:
        super().__init__(tr("Refine: {text}").format(text=job.request.text), QgsTask.Flag(0))
        self.job = job
        self.result: Any = None
        self.error = ("", "")

    def run(self) -> bool:
        """Worker thread: never touches layers or widgets, never raises."""
        try:
            from .runner import call_on_backend_thread

            errors = backend_module("errors")
            try:
                self.result = call_on_backend_thread(run_refine, self.job)
            except errors.Rs2SamError as exc:
                self.error = (str(exc), traceback.format_exc())
                return False
            return True
        except Exception as exc:
            self.error = (tr("Refining failed: {error}").format(error=exc), traceback.format_exc())
            return False

    def finished(self, ok: bool) -> None:
        """Main thread: one outcome signal."""
        if ok and self.result is not None:
            self.succeeded.emit(self.result)
        else:
            self.failed.emit(*(self.error if self.error[0] else (tr("Refining failed."), "")))


class RefineSession(QObject):
    """The clicks on one answer layer: markers, the queue, the edits and their undo.

    Signals:
        changed(): the clicks, the queue or the running state changed.
        message(str, int): text for the message bar and its ``Qgis.MessageLevel``.
    """

    changed = pyqtSignal()
    message = pyqtSignal(str, int)

    def __init__(self, canvas: QgsMapCanvas, layer: QgsVectorLayer,
                 request: SegmentRequest) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.layer_id = layer.id()
        self.request = request
        self.clicks: list[tuple[float, float, bool]] = []  # applied, raster CRS
        self.markers: list[QgsVertexMarker] = []  # applied + queued, in click order
        self.queue: list[tuple[float, float, bool]] = []
        self.task: RefineTask | None = None
        self.steps = 0  # our edit commands on the layer's undo stack

    # ------------------------------------------------------------------ state
    @property
    def layer(self) -> QgsVectorLayer | None:
        """The answer layer, or None once it left the project."""
        layer = QgsProject.instance().mapLayer(self.layer_id)
        return layer if isinstance(layer, QgsVectorLayer) else None

    @property
    def busy(self) -> bool:
        """A click is being refined or waits."""
        return self.task is not None or bool(self.queue)

    # ------------------------------------------------------------------ clicks
    def add_click(self, canvas_point: QgsPointXY, positive: bool) -> bool:
        """Queue a click given in canvas coordinates; False (with a message) when refused."""
        layer = self.layer
        if layer is None:
            self.message.emit(tr("The answer layer is gone; run a text query first."),
                              int(Qgis.MessageLevel.Warning))
            return False
        if not isinstance(self.request.source, FileSource):
            self.message.emit(tr("Refine works on file rasters; this answer came from a web or "
                                 "rendered layer."), int(Qgis.MessageLevel.Warning))
            return False
        to_layer = QgsCoordinateTransform(self.canvas.mapSettings().destinationCrs(),
                                          layer.crs(), QgsProject.instance())
        point = to_layer.transform(canvas_point)
        self.queue.append((point.x(), point.y(), positive))
        self.markers.append(self._marker(canvas_point, positive))
        self.changed.emit()
        self._start_next()
        return True

    def undo_click(self) -> bool:
        """Undo the last applied click (its edit command and marker); False when none."""
        layer = self.layer
        if self.busy or not self.steps or layer is None:
            return False
        layer.undoStack().undo()
        self.steps -= 1
        self.clicks.pop()
        self._drop_marker(len(self.clicks))
        self._record_clicks(layer)
        layer.triggerRepaint()
        self.changed.emit()
        return True

    def clear(self) -> None:
        """Undo every click; the text answer comes back (the queue is dropped)."""
        self.queue.clear()
        while self.undo_click():
            pass
        if not self.busy:
            for k in range(len(self.markers) - 1, len(self.clicks) - 1, -1):
                self._drop_marker(k)
        self.changed.emit()

    def close(self) -> None:
        """Remove the markers (the edits stay in the layer's edit buffer)."""
        self.queue.clear()
        for marker in self.markers:
            self.canvas.scene().removeItem(marker)
        self.markers.clear()

    # ------------------------------------------------------------------ work
    def _start_next(self) -> None:
        if self.task is not None or not self.queue:
            return
        layer = self.layer
        if layer is None:
            self.queue.clear()
            return
        click = self.queue[0]
        fids, wkbs, scores = [], [], []
        for feature in layer.getFeatures():
            fids.append(feature.id())
            wkbs.append(bytes(feature.geometry().asWkb()))
            scores.append(float(feature["score"] or 0.0))
        job = RefineJob(self.request, (*self.clicks, click), tuple(fids), tuple(wkbs),
                        tuple(scores))
        self.task = RefineTask(job)
        self.task.succeeded.connect(self._on_done)
        self.task.failed.connect(self._on_failed)
        QgsApplication.taskManager().addTask(self.task)
        self.changed.emit()

    def _on_done(self, refinement: Any) -> None:
        task, self.task = self.task, None
        click = self.queue.pop(0)
        layer = self.layer
        if layer is None or task is None:
            self.queue.clear()
            return
        self._apply(layer, task.job, refinement, click)
        log_info(tr("Refined with click {k}: {n} tile(s) re-run, {a} polygon(s) replaced by "
                    "{b}").format(k=len(self.clicks), n=refinement.n_tiles,
                                  a=len(refinement.remove), b=len(refinement.polygons)))
        self.changed.emit()
        self._start_next()

    def _on_failed(self, text: str, details: str) -> None:
        self.task = None
        self.queue.pop(0)
        self._drop_marker(len(self.clicks))  # the failed click's marker
        log_error(f"{text}\n{details}" if details else text)
        self.message.emit(text, int(Qgis.MessageLevel.Warning))
        self.changed.emit()
        self._start_next()

    def _apply(self, layer: QgsVectorLayer, job: RefineJob, refinement: Any,
               click: tuple[float, float, bool]) -> None:
        """One edit command: delete the replaced polygons, add the new ones, record clicks."""
        if not layer.isEditable():
            layer.startEditing()
        self.clicks.append(click)
        layer.beginEditCommand(tr("Refine click {k}").format(k=len(self.clicks)))
        layer.deleteFeatures([job.fids[i] for i in refinement.remove])
        fields = layer.fields()
        for geometry, attributes in zip(refinement.polygons, refinement.attributes,
                                        strict=True):
            feature = QgsFeature(fields)
            wkb = geometry.wkb
            g = QgsGeometry()
            g.fromWkb(wkb)
            feature.setGeometry(g)
            for name, value in attributes.items():
                if fields.indexOf(name) >= 0:
                    feature[name] = value
            layer.addFeature(feature)
        self._record_clicks(layer, in_command=True)
        layer.endEditCommand()
        self.steps += 1
        layer.triggerRepaint()

    def _record_clicks(self, layer: QgsVectorLayer, in_command: bool = False) -> None:
        text = ";".join(f"{x:.10g},{y:.10g},{'+' if p else '-'}" for x, y, p in self.clicks)
        layer.setCustomProperty(CLICKS_PROPERTY, text)
        index = layer.fields().indexOf("clicks")
        if in_command and index >= 0:
            for feature in layer.getFeatures():
                if feature["clicks"] != text:
                    layer.changeAttributeValue(feature.id(), index, text)

    # ------------------------------------------------------------------ markers
    def _marker(self, point: QgsPointXY, positive: bool) -> QgsVertexMarker:
        marker = QgsVertexMarker(self.canvas)
        marker.setCenter(point)
        marker.setIconType(QgsVertexMarker.IconType.ICON_CROSS if positive
                           else QgsVertexMarker.IconType.ICON_X)
        marker.setColor(QColor(40, 200, 60) if positive else QColor(230, 40, 40))
        marker.setIconSize(14)
        marker.setPenWidth(3)
        return marker

    def _drop_marker(self, index: int) -> None:
        if 0 <= index < len(self.markers):
            self.canvas.scene().removeItem(self.markers.pop(index))
