"""Dock part: "Refine" — correct the last answer with clicks on the map.

After a text run, "Refine" turns on a map tool (left click = belongs, right click or Shift =
does not); "Undo click" and "Clear clicks" step back. The work is in
:mod:`rs2sam_qgis.refine_tool`; this part only holds the buttons and the session.
"""

from __future__ import annotations

from typing import Any

from qgis.core import Qgis, QgsVectorLayer
from qgis.PyQt.QtCore import QObject
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QPushButton

from ..i18n import tr
from ..refine_tool import RefineMapTool, RefineSession
from ..request import SegmentRequest

__all__ = ["RefinePart"]


class RefinePart(QObject):
    """The Refine / Undo click / Clear clicks row under Run and Cancel.

    Args:
        dock: The :class:`~rs2sam_qgis.dock.SegmentDock` (its canvas and layout).
        iface: The QGIS interface (message bar); None = ``qgis.utils.iface``.
    """

    def __init__(self, dock: Any, iface: Any = None) -> None:
        super().__init__(dock)
        self.dock = dock
        self._iface = iface
        self.canvas = dock.canvas
        self.session: RefineSession | None = None
        self.tool = RefineMapTool(self.canvas)
        self.tool.clicked.connect(self._on_click)
        body = dock.body
        self.refine_button = QPushButton(tr("Refine"), body)
        self.refine_button.setObjectName("Rs2SamRefineButton")
        self.refine_button.setCheckable(True)
        self.refine_button.setToolTip(tr(
            "Correct the last answer with clicks: left click = part of the answer, right click "
            "(or Shift+click) = not part of it. Only the tiles under the click are segmented "
            "again; each click is one undo step."))
        self.undo_button = QPushButton(tr("Undo click"), body)
        self.undo_button.setObjectName("Rs2SamUndoClickButton")
        self.clear_button = QPushButton(tr("Clear clicks"), body)
        self.clear_button.setObjectName("Rs2SamClearClicksButton")
        self.label = QLabel("", body)
        self.label.setWordWrap(True)
        row = QHBoxLayout()
        for widget in (self.refine_button, self.undo_button, self.clear_button):
            row.addWidget(widget)
        layout = body.layout()  # our row goes right below Run / Cancel
        index = layout.indexOf(dock.run_part.progress_bar) if layout is not None else -1
        if layout is not None:
            layout.insertLayout(max(index, 0), row)
            layout.insertWidget(max(index, 0) + 1, self.label)
        self.refine_button.toggled.connect(self._on_toggled)
        self.undo_button.clicked.connect(self.undo)
        self.clear_button.clicked.connect(self.clear)
        self.canvas.mapToolSet.connect(self._on_tool_changed)
        self._update()

    @property
    def iface(self) -> Any:
        """The QGIS interface."""
        if self._iface is None:
            from qgis.utils import iface

            self._iface = iface
        return self._iface

    def set_answer(self, layer: QgsVectorLayer, request: SegmentRequest) -> None:
        """A new text answer: clicks from now on refine ``layer`` (made by ``request``)."""
        if self.session is not None:
            self.session.close()
        self.session = RefineSession(self.canvas, layer, request)
        self.session.changed.connect(self._update)
        self.session.message.connect(self._on_message)
        self._update()

    def undo(self) -> None:
        """Undo the last click."""
        if self.session is not None:
            self.session.undo_click()

    def clear(self) -> None:
        """Undo every click."""
        if self.session is not None:
            self.session.clear()

    def cleanup(self) -> None:
        """Plugin unload: give the canvas its tool back, drop the markers."""
        if self.canvas.mapTool() is self.tool:
            self.canvas.unsetMapTool(self.tool)
        if self.session is not None:
            self.session.close()

    # ------------------------------------------------------------------ slots
    def _on_toggled(self, on: bool) -> None:
        if on and self.session is None:
            self.refine_button.setChecked(False)
            self._on_message(tr("Run a text query first; Refine corrects its answer."),
                             int(Qgis.MessageLevel.Info))
            return
        if on:
            self.canvas.setMapTool(self.tool)
        elif self.canvas.mapTool() is self.tool:
            self.canvas.unsetMapTool(self.tool)

    def _on_tool_changed(self, new: Any, _old: Any = None) -> None:
        if new is not self.tool and self.refine_button.isChecked():
            self.refine_button.setChecked(False)

    def _on_click(self, point: Any, positive: bool) -> None:
        if self.session is not None:
            self.session.add_click(point, positive)

    def _on_message(self, text: str, level: int) -> None:
        self.label.setText(text)
        self.iface.messageBar().pushMessage(tr("Refine"), text,
                                            level=Qgis.MessageLevel(level), duration=6)

    def _update(self) -> None:
        s = self.session
        has = s is not None and s.layer is not None
        self.refine_button.setEnabled(True)
        self.undo_button.setEnabled(bool(has and s.steps and not s.busy))  # type: ignore[union-attr]
        self.clear_button.setEnabled(bool(has and (s.steps or s.busy)))  # type: ignore[union-attr]
        if not has:
            self.label.setText("")
            return
        queued = len(s.queue)  # type: ignore[union-attr]
        text = tr("{n} click(s) applied").format(n=s.steps)  # type: ignore[union-attr]
        if queued:
            text += tr("; refining… ({q} waiting)").format(q=queued - 1 if s.task else queued)  # type: ignore[union-attr]
        self.label.setText(text)
