"""The ``QgsTask`` that runs a query off the GUI thread (PyQGIS cookbook rules, C7).

``run()`` (worker thread) only calls :func:`~.runner.run_segmentation` with the plain-data
request and never raises. ``finished()`` (main thread) emits exactly one of ``succeeded``,
``failed`` or ``cancelled``; the controller touches layers in response.
"""

from __future__ import annotations

import contextlib
import os
import traceback

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ._backend import backend_module
from .i18n import tr
from .request import RunOutcome, SegmentRequest
from .runner import run_on_backend_thread


class SegmentTask(QgsTask):
    """Load (or reuse) the model and segment one query in the background.

    Signals:
        succeeded(RunOutcome): the run wrote its output.
        failed(str, str): a short user message and the details (traceback) for the log.
        cancelled(): the user cancelled; no output was kept.
        stage_changed(str, str): a stage started (key, text); emitted from the worker thread,
            delivered queued to main-thread receivers.
    """

    stage_changed = pyqtSignal(str, str)
    succeeded = pyqtSignal(object)
    failed = pyqtSignal(str, str)
    cancelled = pyqtSignal()

    def __init__(self, request: SegmentRequest) -> None:
        super().__init__(
            tr("Segment by text: {text}").format(text=request.text), QgsTask.Flag.CanCancel
        )
        self.request = request
        self.outcome: RunOutcome | None = None
        self.error_message = ""
        self.error_details = ""
        self.was_cancelled = False

    def run(self) -> bool:
        """Worker thread: never touches QGIS project/layers/widgets, never raises."""
        try:
            errors = backend_module("errors")
            try:
                self.outcome = run_on_backend_thread(
                    self.request, self.setProgress, self.isCanceled, self.stage_changed.emit
                )
            except errors.Cancelled:
                self.was_cancelled = True
                return False
            except errors.Rs2SamError as exc:
                self.error_message = str(exc)
                self.error_details = traceback.format_exc()
                return False
        except Exception as exc:
            self.error_message = tr(
                "Unexpected error: {err}. Details are in the RS2-SAM log tab."
            ).format(err=f"{type(exc).__name__}: {exc}")
            self.error_details = traceback.format_exc()
            return False
        if self.isCanceled():
            self.was_cancelled = True
            return False
        return True

    def finished(self, result: bool) -> None:
        """Main thread: report the outcome through exactly one signal."""
        if result and self.outcome is not None:
            self.succeeded.emit(self.outcome)
            return
        self._remove_partial_output()
        if self.was_cancelled or (self.isCanceled() and not self.error_message):
            self.cancelled.emit()
        else:
            self.failed.emit(
                self.error_message or tr("The run failed without an error message."),
                self.error_details,
            )

    def _remove_partial_output(self) -> None:
        """Nothing of a failed or cancelled run stays on disk."""
        path = self.request.out_path
        if path and os.path.exists(path):
            with contextlib.suppress(OSError):
                os.remove(path)
