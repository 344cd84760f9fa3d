"""Dock part: the "Find" row, an editable combo box with the recent queries."""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QWidget

from ..i18n import tr


class QueryPart:
    """What to segment, in words.

    Attributes:
        combo: Editable combo; its items are the recent queries, most recent first.
    """

    def __init__(self, parent: QWidget, recent_queries: list[str]) -> None:
        self.combo = QComboBox(parent)
        self.combo.setEditable(True)
        self.combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.combo.addItems(recent_queries)
        self.combo.setCurrentIndex(-1)
        self.combo.lineEdit().setPlaceholderText(tr("e.g. the storage tanks next to the harbor"))
        self.combo.lineEdit().setClearButtonEnabled(True)
        self.combo.setToolTip(tr("What to segment, in words; recent queries in the list."))

    def add_rows(self, form: QFormLayout) -> None:
        """Add the part's rows to the dock's main form."""
        form.addRow(tr("Find"), self.combo)

    def text(self) -> str:
        """The query with runs of white space collapsed ("" when empty)."""
        return " ".join(self.combo.currentText().split())

    def show_recent(self, recent_queries: list[str], text: str) -> None:
        """Replace the list by ``recent_queries`` and keep ``text`` in the edit field."""
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems(recent_queries)
        self.combo.setEditText(text)
        self.combo.blockSignals(False)
