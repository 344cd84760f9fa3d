"""Segment by text (RS2-SAM 2) for QGIS.

QGIS imports this package at start-up, so it stays tiny: ``classFactory`` imports the plugin
class only when QGIS asks for it, and nothing here pulls in torch, sam2, open_clip or rasterio.
The one thing done at import is to put the plugin's private package folder (filled by
Raster > RS2-SAM > Install dependencies…) first on ``sys.path``, before anything imports.

The package root sits above every module of the plugin (importing any of them runs this file
first), so it names the plugin class by string, as the registries name their plug-ins: an import
statement here would make each module import its own top floor.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .private_site import activate as _activate_private_site

if TYPE_CHECKING:
    from qgis.gui import QgisInterface

_activate_private_site()


def classFactory(iface: QgisInterface | None) -> Any:
    """Entry point QGIS calls to create the plugin (``iface`` is None inside qgis_process).

    Returns:
        The :class:`rs2sam_qgis.plugin.Rs2SamPlugin` instance.
    """
    _activate_private_site()  # again: a no-op unless the folder appeared since the import
    plugin = importlib.import_module(".plugin", __name__)
    return plugin.Rs2SamPlugin(iface)
