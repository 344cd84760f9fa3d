"""Dock part: the "Output" group (a folder, or a temporary memory layer)."""

from __future__ import annotations

from typing import Any

from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget
from qgis.PyQt.QtWidgets import QCheckBox, QFormLayout, QWidget

from ..i18n import tr
from ..settings import PluginSettings


class OutputPart:
    """Where the result goes.

    Attributes:
        box: The collapsible group (add it to the dock's layout).
        output_dir_widget: The folder; empty = next to the project file.
        memory_checkbox: A temporary memory layer instead of a file.
    """

    def __init__(self, parent: QWidget) -> None:
        self.box = QgsCollapsibleGroupBox(tr("Output"), parent)
        self.box.setObjectName("Rs2SamOutputGroup")
        self.output_dir_widget = QgsFileWidget(self.box)
        self.output_dir_widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output_dir_widget.lineEdit().setPlaceholderText(
            tr("Next to the project file (unsaved project: temporary layer)")
        )
        self.memory_checkbox = QCheckBox(tr("Temporary memory layer (not saved)"), self.box)
        self.memory_checkbox.toggled.connect(self.output_dir_widget.setDisabled)
        form = QFormLayout(self.box)
        form.addRow(tr("Folder"), self.output_dir_widget)
        form.addRow("", self.memory_checkbox)

    def apply(self, settings: PluginSettings) -> None:
        """Show the stored values."""
        self.output_dir_widget.setFilePath(settings.output_dir)
        self.memory_checkbox.setChecked(settings.memory_layer)

    def values(self) -> dict[str, Any]:
        """The part's :class:`PluginSettings` fields."""
        return {
            "output_dir": self.output_dir_widget.filePath().strip(),
            "memory_layer": self.memory_checkbox.isChecked(),
        }
