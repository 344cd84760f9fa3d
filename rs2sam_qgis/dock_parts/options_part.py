"""Dock part: the result options (threshold, minimum area, working resolution)."""

from __future__ import annotations

from typing import Any

from qgis.gui import QgsDoubleSpinBox
from qgis.PyQt.QtWidgets import QFormLayout, QWidget

from ..i18n import tr
from ..min_area import AUTO, AUTO_PIXELS
from ..settings import PluginSettings


class OptionsPart:
    """Spin boxes for the options that shape the result.

    Attributes:
        threshold_spin: Probability threshold in ``[0.01, 1]``.
        min_area_spin: Smallest polygon ground area in m².
        gsd_spin: Working ground resolution in m/px; 0 shows "Model's own".
    """

    def __init__(self, parent: QWidget) -> None:
        self.threshold_spin = QgsDoubleSpinBox(parent)
        self.threshold_spin.setRange(0.01, 1.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setDecimals(2)
        self.threshold_spin.setClearValue(0.5)
        self.threshold_spin.setToolTip(tr("Pixels with a probability above this are kept."))
        self.min_area_spin = QgsDoubleSpinBox(parent)
        self.min_area_spin.setObjectName("Rs2SamMinAreaSpin")
        self.min_area_spin.setRange(AUTO, 1e9)
        self.min_area_spin.setDecimals(1)
        self.min_area_spin.setSuffix(" m²")
        self.min_area_spin.setSpecialValueText(
            tr("Auto ({n} px)").format(n=AUTO_PIXELS)  # short: the field is narrow
        )
        self.min_area_spin.setClearValue(AUTO)
        self.min_area_spin.setToolTip(
            tr(
                "Polygons with a smaller ground area are dropped. Auto = {n} pixels at the "
                "working resolution ({n} m² at 1 m/px, {v:g} m² at 0.25 m/px); the status "
                "line says the value used. 0 keeps everything."
            ).format(n=AUTO_PIXELS, v=AUTO_PIXELS * 0.0625)
        )
        self.gsd_spin = QgsDoubleSpinBox(parent)
        self.gsd_spin.setObjectName("Rs2SamGsdSpin")
        self.gsd_spin.setRange(0.0, 1000.0)
        self.gsd_spin.setDecimals(2)
        self.gsd_spin.setSingleStep(0.05)
        self.gsd_spin.setSuffix(" m/px")
        self.gsd_spin.setSpecialValueText(tr("Model's own"))
        self.gsd_spin.setClearValue(0.0)
        self.gsd_spin.setToolTip(
            tr(
                "Ground resolution the image is resampled to before the model sees it, so the "
                "result does not depend on the zoom. 'Model's own' = what the weights were "
                "trained at, per concept of the text when they store it (bundled weights: "
                "vehicles 0.25 m/px, most others 1 m/px)."
            )
        )

    def add_rows(self, form: QFormLayout) -> None:
        """Add the part's rows to the dock's main form."""
        form.addRow(tr("Threshold"), self.threshold_spin)
        form.addRow(tr("Minimum area"), self.min_area_spin)
        form.addRow(tr("Working resolution"), self.gsd_spin)

    def apply(self, settings: PluginSettings) -> None:
        """Show the stored values."""
        self.threshold_spin.setValue(settings.threshold)
        self.min_area_spin.setValue(settings.min_area_m2)
        self.gsd_spin.setValue(settings.gsd_m)

    def values(self) -> dict[str, Any]:
        """The part's :class:`PluginSettings` fields."""
        return {
            "threshold": self.threshold_spin.value(),
            "min_area_m2": self.min_area_spin.value(),
            "gsd_m": self.gsd_spin.value(),
        }
