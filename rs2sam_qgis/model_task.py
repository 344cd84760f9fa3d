"""The ``QgsTask`` of the model manager: one backend call (plan, download + import) off the GUI.

``run()`` (worker thread) calls the job with a progress callback and the task's cancel flag and
never raises; ``finished()`` (main thread) emits exactly one of ``succeeded``, ``failed`` or
``cancelled``. Progress states (bytes, rate, time left) arrive through ``progress_state``,
delivered queued to main-thread receivers. No QGIS object is touched off the main thread.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ._backend import backend_module
from .i18n import tr

Job = Callable[[Callable[[Any], None], Callable[[], bool]], Any]
"""``job(on_progress, is_cancelled) -> result``."""


class ModelJobTask(QgsTask):
    """Run one model-manager job in the background.

    Signals:
        progress_state(object): a ``backend.model_store.progress.ProgressState``.
        succeeded(object): the job's result.
        failed(str, str): a one-line message for the user and the details for the log.
        cancelled(): the user cancelled; nothing was imported.
    """

    progress_state = pyqtSignal(object)
    succeeded = pyqtSignal(object)
    failed = pyqtSignal(str, str)
    cancelled = pyqtSignal()

    def __init__(self, description: str, job: Job) -> None:
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.job = job
        self.value: Any = None
        self.error_message = ""
        self.error_details = ""
        self.was_cancelled = False

    def _on_progress(self, state: Any) -> None:
        self.setProgress(float(state.percent))
        self.progress_state.emit(state)

    def run(self) -> bool:
        """Worker thread: never touches QGIS objects, never raises."""
        try:
            errors = backend_module("errors")
            try:
                self.value = self.job(self._on_progress, self.isCanceled)
            except errors.Cancelled:
                self.was_cancelled = True
                return False
            except errors.Rs2SamError as exc:
                self.error_message = " ".join(str(exc).split())
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
        """Main thread: exactly one of the three outcome signals."""
        if result:
            self.succeeded.emit(self.value)
        elif self.was_cancelled or (self.isCanceled() and not self.error_message):
            self.cancelled.emit()
        else:
            self.failed.emit(
                self.error_message or tr("The job failed without an error message."),
                self.error_details,
            )
