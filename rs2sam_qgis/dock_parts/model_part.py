"""Dock part: the "Model and device" group (checkpoint, developer model, device, threads)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QLabel, QPushButton, QSpinBox, QWidget

from ..i18n import tr
from ..settings import PRECISIONS, PluginSettings

DEVICES = ("auto", "cpu", "cuda", "mps")
DEV_MODEL_CHOICES = ("", "test-tiny", "standin:red", "standin:sleep:0.5:64")


class ModelPart:
    """Which weights run where.

    Attributes:
        box: The collapsible group (add it to the dock's layout).
        checkpoint_widget: A ``.safetensors`` file; empty = the bundled weights.
        model_info: One line on the weights that will run.
        models_button: Opens the model manager ("Models…").
        dev_model_label, dev_model_combo: Developer models (hidden unless switched on).
        device_combo: ``auto``, ``cpu``, ``cuda``, ``mps`` or any typed device (``cuda:1``).
        threads_spin: CPU threads for the model.
        precision_combo: ``auto``, ``fp32``, ``bf16`` or ``int8`` (the backend's modes).
        form: The group's form, for rows added later.
    """

    def __init__(self, parent: QWidget) -> None:
        self.box = QgsCollapsibleGroupBox(tr("Model and device"), parent)
        self.box.setObjectName("Rs2SamModelGroup")
        self.checkpoint_widget = QgsFileWidget(self.box)
        self.checkpoint_widget.setFilter(tr("Checkpoints (*.safetensors)"))
        self.checkpoint_widget.setDialogTitle(tr("Choose an RS2-SAM 2 checkpoint"))
        self.checkpoint_widget.lineEdit().setPlaceholderText(tr("Bundled default weights"))
        self.model_info = QLabel(self.box)
        self.model_info.setWordWrap(True)
        self.dev_model_combo = QComboBox(self.box)
        self.dev_model_combo.setEditable(True)
        for choice in DEV_MODEL_CHOICES:
            self.dev_model_combo.addItem(choice or tr("(off: use the checkpoint)"), choice)
        self.dev_model_combo.setToolTip(
            tr("Developer only: random-init configs and stand-ins give meaningless results.")
        )
        self.dev_model_label = QLabel(tr("Developer model"), self.box)
        self.device_combo = QComboBox(self.box)
        self.device_combo.setEditable(True)  # cuda:1 etc.
        self.device_combo.addItems(DEVICES)
        self.threads_spin = QSpinBox(self.box)
        self.threads_spin.setRange(1, 256)
        self.threads_spin.setToolTip(tr("CPU threads for the model (the GUI keeps one core)."))
        self.precision_combo = QComboBox(self.box)
        self.precision_combo.setObjectName("Rs2SamPrecision")
        self.precision_combo.addItems(PRECISIONS)
        self.precision_combo.setToolTip(
            tr(
                "auto: the fastest mode measured to keep the answers of fp32 here (bf16 on a GPU "
                "or a CPU with AVX-512 BF16 / AMX, int8 for some large models). fp32: the "
                "reference. bf16 / int8: faster, masks close to fp32 (docs/model.md)."
            )
        )
        self.form = QFormLayout(self.box)
        self.form.addRow(tr("Checkpoint"), self.checkpoint_widget)
        self.form.addRow("", self.model_info)
        self.models_button = QPushButton(tr("Models…"), self.box)
        self.models_button.setObjectName("Rs2SamModelsButton")
        self.models_button.setToolTip(tr("Get the published RS2-SAM 2 model, import or remove"))
        self.form.addRow("", self.models_button)
        self.form.addRow(self.dev_model_label, self.dev_model_combo)
        self.form.addRow(tr("Device"), self.device_combo)
        self.form.addRow(tr("Threads"), self.threads_spin)
        self.form.addRow(tr("Precision"), self.precision_combo)

    def apply(self, settings: PluginSettings) -> None:
        """Show the stored values; the developer model row only when switched on."""
        self.checkpoint_widget.setFilePath(settings.checkpoint)
        index = self.device_combo.findText(settings.device)
        if index >= 0:
            self.device_combo.setCurrentIndex(index)
        else:
            self.device_combo.setEditText(settings.device)
        self.threads_spin.setValue(settings.threads)
        index = self.precision_combo.findText(settings.precision)
        self.precision_combo.setCurrentIndex(max(0, index))
        self.dev_model_combo.setVisible(settings.dev_models)
        self.dev_model_label.setVisible(settings.dev_models)

    def values(self) -> dict[str, Any]:
        """The part's :class:`PluginSettings` fields."""
        return {
            "checkpoint": self.checkpoint_widget.filePath().strip(),
            "device": self.device_combo.currentText().strip() or "auto",
            "threads": self.threads_spin.value(),
            "precision": self.precision_combo.currentText(),
        }

    def dev_model(self, enabled: bool) -> str:
        """The developer model typed or picked ("" when off or not ``enabled``)."""
        if not enabled:
            return ""
        data = self.dev_model_combo.currentData()
        text = self.dev_model_combo.currentText().strip()
        if (
            data is not None
            and self.dev_model_combo.itemText(self.dev_model_combo.currentIndex()) == text
        ):
            return str(data)
        return text

    def show_info(self, dev_model: str, bundled: Callable[[], Path | None]) -> None:
        """Say which weights will run.

        Args:
            dev_model: The developer model in use, or "".
            bundled: Returns the bundled weights file, or None when this build has none.
        """
        if dev_model:
            self.model_info.setText(
                tr("<b>Developer model {name}</b>: results are meaningless.").format(name=dev_model)
            )
            return
        path = self.checkpoint_widget.filePath().strip()
        if path:
            self.model_info.setText(
                tr("Checkpoint: {name}").format(name=Path(path).name)
                if Path(path).is_file()
                else tr("<b>File not found:</b> {path}").format(path=path)
            )
            return
        weights = bundled()
        self.model_info.setText(
            tr("Bundled weights: {name}").format(name=weights.name)
            if weights is not None
            else tr("<b>No bundled weights in this build.</b> Choose a .safetensors checkpoint.")
        )
