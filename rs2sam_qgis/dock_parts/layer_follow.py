"""Keep the dock's raster picker on a raster while the project changes under an open dock.

``QgsMapLayerComboBox`` lists added, removed and renamed layers by itself, but with an empty
entry allowed it stays on that entry when a raster is added after the dock opened, and Run
then says "add one to the project first" although a raster is loaded. This follows the
project: a raster added while none is chosen becomes the choice, and when the chosen raster
is removed the picker moves to the next raster of the project (or to the empty entry when
there is none). A choice the user made is never replaced.
"""

from __future__ import annotations

from qgis.core import QgsMapLayer, QgsProject, QgsRasterLayer
from qgis.gui import QgsMapLayerComboBox


class LayerFollower:
    """Connects a raster ``QgsMapLayerComboBox`` to the project's layer signals.

    Args:
        combo: The picker (raster filter, empty entry allowed).
        project: The project to follow (default: the current one).
    """

    def __init__(self, combo: QgsMapLayerComboBox, project: QgsProject | None = None) -> None:
        self.combo = combo
        self.project = project or QgsProject.instance()
        self.project.layersAdded.connect(self._on_added)
        self.project.layersRemoved.connect(self._on_removed)

    def disconnect(self) -> None:
        """Stop following (the dock is unloaded)."""
        for signal, slot in (
            (self.project.layersAdded, self._on_added),
            (self.project.layersRemoved, self._on_removed),
        ):
            try:
                signal.disconnect(slot)
            except TypeError:
                pass

    def _on_added(self, layers: list[QgsMapLayer]) -> None:
        if isinstance(self.combo.currentLayer(), QgsRasterLayer):
            return
        rasters = [layer for layer in layers if isinstance(layer, QgsRasterLayer)]
        if rasters:
            self.combo.setLayer(rasters[-1])

    def _on_removed(self, _layer_ids: list[str]) -> None:
        if isinstance(self.combo.currentLayer(), QgsRasterLayer):
            return
        for layer in self.project.mapLayers().values():
            if isinstance(layer, QgsRasterLayer):
                self.combo.setLayer(layer)
                return
