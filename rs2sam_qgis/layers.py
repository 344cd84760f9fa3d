"""Main-thread only: load a run's GeoPackage as a styled layer and put it above the raster."""

from __future__ import annotations

import shutil
from pathlib import Path

from qgis.core import (
    QgsFeatureRequest,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsProject,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)

from .i18n import tr
from .request import RunOutcome, SegmentRequest

# fill colours for successive result layers (outline = the same colour, opaque)
PALETTE = (
    (255, 59, 48),
    (0, 122, 255),
    (255, 204, 0),
    (175, 82, 222),
    (52, 199, 89),
    (255, 149, 0),
    (90, 200, 250),
    (255, 45, 85),
)
FILL_ALPHA = 100  # of 255: semi-transparent so the imagery stays visible

_counter = {"next": 0}


def style_layer(layer: QgsVectorLayer) -> None:
    """Semi-transparent fill with a solid outline, a new colour for each result layer."""
    red, green, blue = PALETTE[_counter["next"] % len(PALETTE)]
    _counter["next"] += 1
    symbol = QgsFillSymbol.createSimple(
        {
            "color": f"{red},{green},{blue},{FILL_ALPHA}",
            "outline_color": f"{red},{green},{blue},255",
            "outline_width": "0.6",
            "outline_width_unit": "MM",
        }
    )
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))


SKIP_MEMORY_CHECK = "skipMemoryLayersCheck"
"""Layer property QGIS reads on exit: 1 = don't ask about this temporary layer."""


def unique_layer_name(name: str, taken: set[str] | None = None) -> str:
    """``name``, or ``name (2)``, ``name (3)``, ... when a project layer already has it.

    Args:
        name: The wanted name.
        taken: Names in use; default: every layer name in the current project.
    """
    if taken is None:
        taken = {layer.name() for layer in QgsProject.instance().mapLayers().values()}
    if name not in taken:
        return name
    counter = 2
    while f"{name} ({counter})" in taken:
        counter += 1
    return f"{name} ({counter})"


def load_result_layer(outcome: RunOutcome, request: SegmentRequest) -> QgsVectorLayer:
    """Open the run's GeoPackage (or copy it into a memory layer), name it uniquely, style it.

    A memory layer is marked so that QGIS does not ask about it on exit (the dock says it is
    temporary, and QGIS's layer-tree indicator saves it in one click).

    Raises:
        OSError: The file is missing or not a readable vector layer.
    """
    name = unique_layer_name(request.layer_name)
    layer = QgsVectorLayer(outcome.out_path, name, "ogr")
    if not layer.isValid():
        raise OSError(
            tr("The result file {path} could not be opened.").format(path=outcome.out_path)
        )
    if request.memory_layer:
        memory = layer.materialize(QgsFeatureRequest())
        memory.setName(name)
        memory.setCustomProperty(SKIP_MEMORY_CHECK, 1)
        del layer  # release the temp file before removing it
        shutil.rmtree(Path(outcome.out_path).parent, ignore_errors=True)
        layer = memory
    style_layer(layer)
    return layer


RESULT_PROPERTY = "rs2sam/result"
"""Custom layer property marking the plugin's result layers."""


def insert_above_raster(layer: QgsVectorLayer, raster_layer_id: str) -> None:
    """Add ``layer`` above the raster in the layer tree (else on top of the tree).

    Earlier results stacked directly above the same raster stay below the new one, so the
    newest query is drawn on top.
    """
    project = QgsProject.instance()
    layer.setCustomProperty(RESULT_PROPERTY, True)
    project.addMapLayer(layer, False)
    root = project.layerTreeRoot()
    node = root.findLayer(raster_layer_id) if raster_layer_id else None
    parent = node.parent() if node is not None else None
    if not isinstance(parent, QgsLayerTreeGroup):
        root.insertLayer(0, layer)
        return
    children = parent.children()
    index = next(i for i, child in enumerate(children) if child is node)
    while index > 0:
        above = children[index - 1]
        above_layer = getattr(above, "layer", lambda: None)()
        if above_layer is None or not above_layer.customProperty(RESULT_PROPERTY, False):
            break
        index -= 1
    parent.insertLayer(index, layer)


def format_area(area_m2: float) -> str:
    """Human-readable ground area: m², ha or km²."""
    if area_m2 >= 1e6:
        return tr("{value:.2f} km²").format(value=area_m2 / 1e6)
    if area_m2 >= 1e4:
        return tr("{value:.2f} ha").format(value=area_m2 / 1e4)
    return tr("{value:.0f} m²").format(value=area_m2)


def summary(outcome: RunOutcome, text: str) -> str:
    """One line for the message bar: polygons, total area, seconds."""
    return tr("'{text}': {n} polygon(s), {area} in {seconds:.1f} s").format(
        text=text, n=outcome.polygons, area=format_area(outcome.area_m2), seconds=outcome.seconds
    )
