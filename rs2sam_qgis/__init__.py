"""Segment by text (RS2-SAM 2) for QGIS.

QGIS imports this package at start-up, so it stays tiny: ``classFactory`` imports the plugin
class only when QGIS asks for it, and nothing here pulls in torch, sam2, open_clip or rasterio.
The one thing done at import is to put the plugin's private package folder (filled by
Raster > RS2-SAM > Install dependencies…) first on ``sys.path``, before anything imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .private_site import activate as _activate_private_site

if TYPE_CHECKING:
    from qgis.gui import QgisInterface

    from .plugin import Rs2SamPlugin

_activate_private_site()


def classFactory(iface: QgisInterface | None) -> Rs2SamPlugin:
    """Entry point QGIS calls to create the plugin (``iface`` is None inside qgis_process)."""
    _activate_private_site()  # again: a no-op unless the folder appeared since the import
    from .plugin import Rs2SamPlugin

    return Rs2SamPlugin(iface)
