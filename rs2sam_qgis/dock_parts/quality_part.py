"""Dock part: what the answer is worth, and the remedies when the model is weak on the concept.

Shown after a run whose concept the model is known to be weak on (:mod:`backend.quality`): the
measured quality and the known failure case, then one button per remedy registered in
:mod:`rs2sam_qgis.remedies` (get the published model, teach the model from polygons), or, when
none is registered, the two remedies in words.
"""

from __future__ import annotations

from collections.abc import Callable

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..i18n import tr
from ..remedies import RemedyContext, on_change, registered


class QualityPart:
    """A framed box under the status line, hidden unless the last answer is weak.

    Attributes:
        box: The frame.
        label: The note and what helps.
        buttons: One ``QPushButton`` per registered remedy (rebuilt when the registry changes).
        context: What the box is about (None while hidden).
    """

    def __init__(self, parent: QWidget) -> None:
        self.box = QFrame(parent)
        self.box.setObjectName("Rs2SamQualityBox")
        self.box.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel(self.box)
        self.label.setObjectName("Rs2SamQualityLabel")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.row = QHBoxLayout()
        layout = QVBoxLayout(self.box)
        layout.addWidget(self.label)
        layout.addLayout(self.row)
        self.buttons: list[QPushButton] = []
        self.context: RemedyContext | None = None
        self.box.setVisible(False)
        self._stop: Callable[[], None] = on_change(self._refresh)

    def show(self, context: RemedyContext | None, weak: bool) -> None:
        """Show the box for a weak answer; hide it otherwise (None: a run without a note)."""
        self.context = context if weak and context is not None and context.note else None
        self._refresh()

    def cleanup(self) -> None:
        """Stop listening to the remedy registry (plugin unload)."""
        self._stop()

    def _refresh(self) -> None:
        for button in self.buttons:
            self.row.removeWidget(button)
            button.deleteLater()
        self.buttons = []
        context = self.context
        if context is None:
            self.box.setVisible(False)
            return
        remedies = registered()
        helps = (
            tr("What helps:")
            if remedies
            else tr(
                "What helps: the published RS2-SAM 2 model (README, 'Use the published RS2-SAM 2 "
                "weights'), or teaching the model from a few polygons you draw."
            )
        )
        self.label.setText(f"{context.note}\n{helps}")
        for remedy in remedies:
            button = QPushButton(remedy.label, self.box)
            button.setObjectName(f"Rs2SamRemedy_{remedy.key}")
            button.clicked.connect(lambda _checked=False, r=remedy: r.callback(self.context))
            self.row.addWidget(button)
            self.buttons.append(button)
        self.box.setVisible(True)
