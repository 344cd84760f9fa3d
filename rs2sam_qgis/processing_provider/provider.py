"""The ``rs2sam`` Processing provider."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..i18n import tr
from .adapt_algorithm import AdaptModelAlgorithm
from .algorithm import SegmentByTextAlgorithm

ICON = Path(__file__).resolve().parents[1] / "icons" / "segment_by_text.svg"


class Rs2SamProvider(QgsProcessingProvider):
    """Provider id ``rs2sam``: Toolbox, batch mode, the modeler and ``qgis_process``."""

    def id(self) -> str:
        """Provider id used in algorithm ids (``rs2sam:segmentbytext``)."""
        return "rs2sam"

    def name(self) -> str:
        """Name shown in the Processing Toolbox."""
        return tr("Segment by text (RS2-SAM 2)")

    def longName(self) -> str:
        """Longer name for tooltips."""
        return tr("Segment by text: RS2-SAM 2 referring segmentation")

    def icon(self) -> QIcon:
        """The plugin icon."""
        return QIcon(str(ICON))

    def svgIconPath(self) -> str:
        """Path of the SVG icon."""
        return str(ICON)

    def supportsNonFileBasedOutput(self) -> bool:
        """Outputs are files (the backend writes a GeoPackage); temporary outputs are temp files."""
        return False

    def loadAlgorithms(self) -> None:
        """Register the algorithms."""
        self.addAlgorithm(SegmentByTextAlgorithm())
        self.addAlgorithm(AdaptModelAlgorithm())
