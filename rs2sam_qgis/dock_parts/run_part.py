"""Dock part: Run and Cancel, the progress bar and the status line."""

from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..i18n import tr


class RunPart:
    """Starting, stopping and following a run.

    Attributes:
        run_button, cancel_button: The dock forwards their ``clicked``.
        buttons: The row that holds the buttons (room for more actions).
        progress_bar: Percent, or busy (range 0..0) while the model loads.
        status_label: What the run does now, or its outcome.
        stage_key: The current stage (``load``, ``read``, ``tiles``, ...; "" when idle).
    """

    def __init__(self, parent: QWidget) -> None:
        self.stage_key = ""
        self.run_button = QPushButton(tr("Run"), parent)
        self.run_button.setObjectName("Rs2SamRunButton")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton(tr("Cancel"), parent)
        self.cancel_button.setObjectName("Rs2SamCancelButton")
        self.cancel_button.setEnabled(False)
        self.buttons = QHBoxLayout()
        self.buttons.addWidget(self.run_button)
        self.buttons.addWidget(self.cancel_button)
        self.progress_bar = QProgressBar(parent)
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.status_label = QLabel(tr("Ready."), parent)
        self.status_label.setObjectName("Rs2SamStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)

    def add_to(self, layout: QVBoxLayout) -> None:
        """Add the buttons, the progress bar and the status line to the dock's layout."""
        layout.addLayout(self.buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)

    def set_running(self, running: bool) -> None:
        """Switch between idle (Run enabled) and running (Cancel enabled)."""
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress_bar.setRange(0, 100)
        self.stage_key = ""
        if running:
            self.progress_bar.setValue(0)

    def set_progress(self, percent: float) -> None:
        """Progress bar value in percent."""
        self.progress_bar.setValue(round(percent))

    def set_stage(self, key: str, text: str) -> None:
        """What the run does now, in the status line; the model load shows a busy bar.

        Args:
            key: ``load``, ``read``, ``tiles``, ``vectorize`` or ``write``.
            text: The status text.
        """
        self.stage_key = key
        self.status_label.setText(text)
        if key == "load":
            self.progress_bar.setRange(0, 0)  # busy: a load has no percentage
        elif self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 100)
