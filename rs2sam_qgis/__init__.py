"""Segment by text (RS2-SAM 2) for QGIS.

QGIS imports this package at start-up, so it stays tiny: ``classFactory`` imports the plugin
class only when QGIS asks for it, and nothing here pulls in torch, sam2, open_clip or rasterio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qgis.gui import QgisInterface

    from .plugin import Rs2SamPlugin


def classFactory(iface: QgisInterface | None) -> Rs2SamPlugin:
    """Entry point QGIS calls to create the plugin (``iface`` is None inside qgis_process)."""
    from .plugin import Rs2SamPlugin

    return Rs2SamPlugin(iface)
