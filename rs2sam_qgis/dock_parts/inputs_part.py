"""Dock part: which raster and which area (the raster layer, the extent mode, the AOI layer)."""

from __future__ import annotations

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgsMapCanvas, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QLabel, QWidget

from ..i18n import tr
from ..layer_input import file_source

EXTENT_MODES = ("canvas", "layer", "selection")


class InputsPart:
    """The raster layer, the extent (visible map, full layer, selected polygons), the extent line.

    Attributes:
        layer_combo: Raster layers of the project (may be empty).
        extent_combo: Extent mode; item data ``canvas``, ``layer`` or ``selection``.
        aoi_label, aoi_layer_combo: The polygon layer (visible in ``selection`` mode only).
        extent_info: One line on the extent, its CRS and how the layer is read.
    """

    def __init__(self, parent: QWidget, canvas: QgsMapCanvas) -> None:
        self.canvas = canvas
        self.layer_combo = QgsMapLayerComboBox(parent)
        self.layer_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.layer_combo.setAllowEmptyLayer(True)
        self.layer_combo.setToolTip(tr("The raster to segment (defaults to the active layer)."))

        self.extent_combo = QComboBox(parent)
        self.extent_combo.addItem(tr("Visible map extent"), "canvas")
        self.extent_combo.addItem(tr("Full layer"), "layer")
        self.extent_combo.addItem(tr("Selected polygon(s) of a layer"), "selection")
        self.aoi_label = QLabel(tr("Polygon layer"), parent)
        self.aoi_layer_combo = QgsMapLayerComboBox(parent)
        self.aoi_layer_combo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.aoi_layer_combo.setToolTip(tr("Polygon layer whose selected features set the area."))
        self.extent_combo.currentIndexChanged.connect(self.update_extent_widgets)
        self.extent_info = QLabel(parent)
        self.extent_info.setWordWrap(True)
        self.extent_info.setObjectName("Rs2SamExtentInfo")

    def add_rows(self, form: QFormLayout) -> None:
        """Add the part's rows to the dock's main form."""
        form.addRow(tr("Raster layer"), self.layer_combo)
        form.addRow(tr("Extent"), self.extent_combo)
        form.addRow(self.aoi_label, self.aoi_layer_combo)
        form.addRow("", self.extent_info)

    def connect_canvas(self) -> None:
        """Keep the extent line current with the canvas and the chosen layer."""
        self.canvas.extentsChanged.connect(self.update_extent_info)
        self.canvas.destinationCrsChanged.connect(self.update_extent_info)
        self.layer_combo.layerChanged.connect(self.update_extent_info)

    def disconnect_canvas(self) -> None:
        """Undo :meth:`connect_canvas` for the long-lived canvas (plugin unload)."""
        for signal in (self.canvas.extentsChanged, self.canvas.destinationCrsChanged):
            try:
                signal.disconnect(self.update_extent_info)
            except TypeError:
                pass

    def extent_mode(self) -> str:
        """``canvas``, ``layer`` or ``selection``."""
        return str(self.extent_combo.currentData())

    def set_extent_mode(self, mode: str) -> None:
        """Select ``mode`` (the first mode when unknown)."""
        self.extent_combo.setCurrentIndex(max(0, self.extent_combo.findData(mode)))
        self.update_extent_widgets()

    def raster_layer(self) -> QgsRasterLayer | None:
        """The chosen raster layer, or None."""
        layer = self.layer_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def aoi_layer(self) -> QgsVectorLayer | None:
        """The chosen polygon layer, or None."""
        layer = self.aoi_layer_combo.currentLayer()
        return layer if isinstance(layer, QgsVectorLayer) else None

    def update_extent_widgets(self, *_args: object) -> None:
        """Show the polygon layer only in ``selection`` mode; refresh the extent line."""
        is_selection = self.extent_combo.currentData() == "selection"
        self.aoi_layer_combo.setVisible(is_selection)
        self.aoi_label.setVisible(is_selection)
        self.update_extent_info()

    def update_extent_info(self, *_args: object) -> None:
        """Say what will be read: the extent, its CRS and whether the layer is a file."""
        layer = self.raster_layer()
        mode = self.extent_combo.currentData()
        if layer is None:
            self.extent_info.setText(tr("Add or choose a raster layer."))
            return
        kind = tr("file") if file_source(layer) is not None else tr("read at screen resolution")
        if mode == "canvas":
            size = self.canvas.size()
            self.extent_info.setText(
                tr("Visible extent ({w} × {h} screen px), CRS {crs}; layer: {kind}").format(
                    w=size.width(),
                    h=size.height(),
                    crs=self.canvas.mapSettings().destinationCrs().authid() or "?",
                    kind=kind,
                )
            )
        elif mode == "layer":
            self.extent_info.setText(
                tr("Whole layer, CRS {crs}; layer: {kind}").format(
                    crs=layer.crs().authid() or "?", kind=kind
                )
            )
        else:
            self.extent_info.setText(tr("Bounding box of the selected polygons, results clipped."))
