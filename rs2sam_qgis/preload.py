"""Load the dock's model in the background as soon as the dock opens.

A first query used to pay for importing torch and the geo stack and for reading the weights
(about 11 s of a 12 s first answer on a busy desktop). :class:`ModelPreloader` starts that
work when the dock becomes visible (also when QGIS starts with the dock open): on the
plugin's one backend thread (:func:`~rs2sam_qgis.runner.submit_on_backend_thread`, where every
query runs), it imports torch and the raster/vector stack and puts the chosen model into the
model cache. The dock's status line says "Loading the model…", then "Model ready.".

A query asked meanwhile is queued on the same thread behind the preload, so it waits for it
and then finds the model in the cache: it never loads a second copy. Nothing is preloaded when
the dependencies are missing or the model choice has a problem (the Run button reports those),
or when ``RS2SAM_PRELOAD=0``.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future
from typing import Any

from qgis.PyQt.QtCore import QObject, pyqtSignal

from .i18n import tr
from .models import CACHE, ModelChoice, choice_problem, parse_model_choice

logger = logging.getLogger(__name__)

LOADING, READY, FAILED = "loading", "ready", "failed"


class ModelPreloader(QObject):
    """Preloads the model of ``dock`` whenever the dock is shown.

    Signals:
        state_changed(str): ``loading``, ``ready`` or ``failed`` (main thread).

    Attributes:
        state: The last state ("" before the first preload).
        future: The preload in flight or done (None before the first one).
    """

    state_changed = pyqtSignal(str)

    def __init__(self, dock: Any) -> None:
        super().__init__(dock)
        self.dock = dock
        self.state = ""
        self.future: Future[Any] | None = None
        self._choice: tuple[ModelChoice, str] | None = None
        self.state_changed.connect(self._show)
        dock.visibilityChanged.connect(self._on_visibility)

    def _on_visibility(self, visible: bool) -> None:
        if visible:
            self.start()

    def start(self) -> bool:
        """Preload the dock's model choice unless loaded or loading; True when started."""
        if os.environ.get("RS2SAM_PRELOAD", "1") == "0":
            return False
        if self.future is not None and not self.future.done():
            return False
        settings = self.dock.current_settings()
        choice = parse_model_choice(settings.checkpoint, self.dock._dev_model())
        if choice_problem(choice) or not _dependencies_ok():
            return False
        if CACHE.contains(choice, settings.device):
            self._set_state(READY)
            return False
        from .runner import submit_on_backend_thread

        self._choice = (choice, settings.device)
        self._set_state(LOADING)
        self.future = submit_on_backend_thread(preload, choice, settings.device, settings.threads)
        self.future.add_done_callback(self._on_done)  # on the backend thread: emit to main
        return True

    def _on_done(self, future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            logger.warning("preloading the model failed (the query will say why): %s", error)
        try:
            self.state_changed.emit(FAILED if error is not None else READY)
        except RuntimeError:  # the dock (our parent) was deleted meanwhile (plugin unload)
            pass

    def _set_state(self, state: str) -> None:
        self.state = state
        self._show(state)

    def _show(self, state: str) -> None:
        self.state = state
        if not self.dock.run_button.isEnabled():
            return  # a query is running: its own status line wins
        text = {
            LOADING: tr("Loading the model… (you can ask a query meanwhile)"),
            READY: tr("Model ready."),
        }.get(state)
        if text:
            self.dock.set_status(text)


def preload(choice: ModelChoice, device: str, threads: int | None) -> float:
    """Backend thread: import what a query needs and load ``choice`` into the cache.

    Returns:
        Seconds spent loading the model (0.0 when it was cached already).
    """
    from ._backend import backend_module
    from .native_libs import isolate_native_libraries, prepare_torch_stack

    isolate_native_libraries()  # before the backend first imports shapely/pyproj/rasterio
    if choice.standin is None:
        prepare_torch_stack()
    _, seconds = CACHE.get(choice, device, threads)
    backend_module("pipeline").warm_up()  # the first query then imports and starts nothing
    return seconds


def _dependencies_ok() -> bool:
    from .deps import check_dependencies

    try:
        return check_dependencies().ok
    except Exception:  # a broken check must not break opening the dock
        logger.exception("dependency check before preloading failed")
        return False
