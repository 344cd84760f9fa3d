"""Controller: dependency check, one task at a time, results into the project, messages."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

from qgis.core import Qgis, QgsApplication, QgsProject
from qgis.PyQt.QtCore import QObject

from .deps import DependencyReport, check_dependencies
from .dock import SegmentDock
from .i18n import tr
from .layers import insert_above_raster, load_result_layer, summary
from .log import log_error, log_info, log_warning
from .quality_note import annotate_layer
from .remedies import RemedyContext
from .request import RunOutcome, SegmentRequest
from .settings import save_settings
from .tasks import SegmentTask

logger = logging.getLogger(__name__)


class SegmentController(QObject):
    """Connects the dock to :class:`SegmentTask` and the project.

    Args:
        iface: The QGIS interface (message bar).
        dock: The view.
    """

    def __init__(self, iface: Any, dock: SegmentDock) -> None:
        super().__init__(dock)
        self.iface = iface
        self.dock = dock
        self.task: SegmentTask | None = None
        self.deps_report: DependencyReport | None = None
        self.last_layer_id = ""
        self.title = tr("Segment by text")
        dock.segment_requested.connect(self.start)
        dock.invalid_input.connect(self.show_problem)
        dock.cancel_requested.connect(self.cancel)

    # ------------------------------------------------------------------ public
    @property
    def is_running(self) -> bool:
        """True while a task of this dock is queued or running."""
        return self.task is not None

    def start(self, request: SegmentRequest) -> bool:
        """Start a run (main thread). Returns False when it was refused (and says why)."""
        if self.task is not None:
            self.show_problem(tr("A query is already running; wait for it or cancel it."))
            return False
        if not self._dependencies_ok():
            return False
        self.dock.remember_query(request.text)
        save_settings(self.dock.settings)
        if request.model.is_developer_choice:
            log_warning(
                tr("Running with developer model {label}: results are not meaningful.").format(
                    label=request.model.label
                )
            )
        log_info(
            tr(
                "Start: {text!r} on layer {layer} with {model}, device {device}, "
                "{threads} thread(s), output {out}"
            ).format(
                text=request.text,
                layer=request.raster_layer_id,
                model=request.model.label,
                device=request.device,
                threads=request.threads,
                out=request.out_path,
            )
        )
        task = SegmentTask(request)
        task.progressChanged.connect(self.dock.set_progress)
        task.stage_changed.connect(self.dock.set_stage)
        task.succeeded.connect(self._on_succeeded)
        task.failed.connect(self._on_failed)
        task.cancelled.connect(self._on_cancelled)
        self.task = task  # keep a Python reference, or finished() may never run
        self.dock.set_running(True)
        self.dock.show_quality(None, False)  # the last answer's note no longer applies
        self.dock.set_status(tr("Running '{text}'…").format(text=request.text))
        QgsApplication.taskManager().addTask(task)
        return True

    def cancel(self) -> None:
        """Ask the running task to stop; the backend checks between tiles."""
        if self.task is not None:
            self.dock.set_status(tr("Cancelling…"))
            self.task.cancel()

    def shutdown(self) -> None:
        """On unload: cancel a running task and stop listening to it."""
        task, self.task = self.task, None
        if task is not None:
            for signal in (task.succeeded, task.failed, task.cancelled, task.progressChanged):
                try:
                    signal.disconnect()
                except TypeError:
                    pass
            task.cancel()

    def show_problem(self, message: str) -> None:
        """A user-fixable problem: message bar warning + status line; nothing runs."""
        self.dock.set_status(message)
        self.iface.messageBar().pushMessage(
            self.title, message, level=Qgis.MessageLevel.Warning, duration=8
        )

    # ------------------------------------------------------------------ private
    def refresh_dependencies(self, notify: bool = False) -> DependencyReport:
        """Check the dependencies again and show the result in the dock (box + button).

        Args:
            notify: Also put the short line in the message bar (when the dock opens).
        """
        report = check_dependencies()
        self.deps_report = report
        if report.ok:
            self.dock.set_dependency_problem("")
        elif report.restart_needed:  # installed: never invite a second install
            self.dock.set_dependency_problem(report.summary(), installable=False)
        else:
            self.dock.set_dependency_problem(
                report.summary()
                + " "
                + tr("Install them into the plugin's own folder with the button below.")
            )
        if notify and not report.ok:
            self.iface.messageBar().pushMessage(
                self.title, self._bar_text(report), level=Qgis.MessageLevel.Warning, duration=10
            )
        return report

    @staticmethod
    def _bar_text(report: DependencyReport) -> str:
        if report.restart_needed:
            return report.summary()
        return (
            report.summary()
            + " "
            + tr("Use 'Install dependencies…' in the Segment by text panel; details in the "
                 "RS2-SAM log.")
        )

    def _dependencies_ok(self) -> bool:
        if self.deps_report is not None and self.deps_report.ok:
            return True
        report = self.refresh_dependencies()
        if report.ok:
            return True
        log_error(report.message())  # the full story, with the terminal commands
        self.dock.set_status(report.summary())
        self.iface.messageBar().pushMessage(
            self.title, self._bar_text(report), level=Qgis.MessageLevel.Critical, duration=0
        )
        return False

    def _finish(self) -> SegmentRequest | None:
        task, self.task = self.task, None
        self.dock.set_running(False)
        return task.request if task is not None else None

    def _on_succeeded(self, outcome: RunOutcome) -> None:
        request = self._finish()
        if request is None:
            return
        log_info(
            tr("Done: {n} polygon(s) in {s:.2f} s (model load {l:.2f} s) -> {out}").format(
                n=outcome.polygons, s=outcome.seconds, l=outcome.load_seconds, out=outcome.out_path
            )
        )
        if outcome.polygons == 0:
            with contextlib.suppress(OSError):
                os.remove(outcome.out_path)  # an empty file would only confuse
            self._show_quality(outcome, request, "")
            message = tr(
                "Nothing found for '{text}' above threshold {t:.2f} ({s:.1f} s). Try a lower "
                "threshold, another extent or other words; no layer was added."
            ).format(text=request.text, t=request.threshold, s=outcome.seconds)
            notes = [tr("Note: {warning}").format(warning=w) for w in outcome.warnings]
            extra = [outcome.quality_note] if outcome.quality_note else []
            if outcome.min_area_text:
                extra.append(tr("Kept: polygons above the {what}.").format(
                    what=outcome.min_area_text))
            self.dock.set_status("\n".join([message, *notes, *extra]))
            self.iface.messageBar().pushMessage(
                self.title,
                " ".join([message, *notes]),
                level=Qgis.MessageLevel.Warning if notes else Qgis.MessageLevel.Info,
                duration=8,
            )
            return
        try:
            layer = load_result_layer(outcome, request)
        except OSError as exc:
            self._on_failed(str(exc), "")
            return
        annotate_layer(layer, outcome.quality_note)
        insert_above_raster(layer, request.raster_layer_id)
        self.last_layer_id = layer.id()
        self.dock.refine_part.set_answer(layer, request)  # clicks now refine this answer
        self._show_quality(outcome, request, layer.id())
        text = summary(outcome, layer.name())
        notes = [tr("Note: {warning}").format(warning=w) for w in outcome.warnings]
        if self.dock.temp_output_warning:
            notes.append(self.dock.temp_output_warning)
        if outcome.quality_note:
            notes.append(outcome.quality_note)
        if outcome.min_area_text:
            notes.append(tr("Kept: polygons above the {what}.").format(what=outcome.min_area_text))
        self.dock.set_progress(100)
        self.dock.set_status("\n".join([text, *notes]))
        # one message: the result, with the warnings about it (not a stack of three)
        self.iface.messageBar().pushMessage(
            self.title,
            " ".join([text, *notes[: len(outcome.warnings)]]),
            level=Qgis.MessageLevel.Warning if outcome.warnings else Qgis.MessageLevel.Success,
            duration=12 if outcome.warnings else 6,
        )

    def _show_quality(self, outcome: RunOutcome, request: SegmentRequest, layer_id: str) -> None:
        context = RemedyContext(
            prompt=request.text,
            concepts=outcome.concepts,
            note=outcome.quality_note,
            raster_layer_id=request.raster_layer_id,
            result_layer_id=layer_id,
        )
        self.dock.show_quality(context, outcome.quality_weak)

    def _on_failed(self, message: str, details: str) -> None:
        self._finish()
        log_error(message + ("\n" + details if details else ""))
        self.dock.set_status(tr("Failed: {message}").format(message=message))
        if details:
            self.iface.messageBar().pushMessage(
                self.title, message, details, level=Qgis.MessageLevel.Critical, duration=0
            )
        else:
            self.iface.messageBar().pushMessage(
                self.title, message, level=Qgis.MessageLevel.Critical, duration=0
            )

    def _on_cancelled(self) -> None:
        self._finish()
        log_info(tr("Cancelled; nothing was added."))
        self.dock.set_progress(0)
        self.dock.set_status(tr("Cancelled; nothing was added."))
        self.iface.messageBar().pushMessage(
            self.title,
            tr("Cancelled; nothing was added."),
            level=Qgis.MessageLevel.Info,
            duration=5,
        )


def project_layer_count() -> int:
    """Number of layers in the current project (tests use it to check 'nothing was added')."""
    return len(QgsProject.instance().mapLayers())
