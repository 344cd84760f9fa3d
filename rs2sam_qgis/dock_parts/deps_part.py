"""Dock part: the box that names missing dependencies, with "Install dependencies…"."""

from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QFrame, QLabel, QPushButton, QVBoxLayout, QWidget

from ..i18n import tr


class DepsPart:
    """A framed box, hidden while everything is installed.

    Attributes:
        box: The frame (add it to the dock's layout).
        label: The problem text.
        install_button: "Install dependencies…" (the dock forwards its ``clicked``).
    """

    def __init__(self, parent: QWidget) -> None:
        self.box = QFrame(parent)
        self.box.setObjectName("Rs2SamDepsBox")
        self.box.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel(self.box)
        self.label.setObjectName("Rs2SamDepsLabel")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.install_button = QPushButton(tr("Install dependencies…"), self.box)
        self.install_button.setObjectName("Rs2SamInstallButton")
        layout = QVBoxLayout(self.box)
        layout.addWidget(self.label)
        layout.addWidget(self.install_button)
        self.box.setVisible(False)

    def show_problem(self, text: str, installable: bool) -> None:
        """Show ``text`` and (if ``installable``) the install button; "" hides the box."""
        self.label.setText(text)
        self.install_button.setVisible(installable)
        self.box.setVisible(bool(text))
