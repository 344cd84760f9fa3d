"""The dock's "Teach from these features" in real QGIS: progress, result, cancel, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis_helpers import RED_BOX, messages, wait_for

pytestmark = pytest.mark.qgis


def _setup(plugin, qgis_iface, raster: Path, select: bool = True):
    from qgis.core import (
        QgsFeature,
        QgsGeometry,
        QgsProject,
        QgsRasterLayer,
        QgsRectangle,
        QgsVectorLayer,
    )

    rlayer = QgsRasterLayer(str(raster), "red")
    assert rlayer.isValid()
    QgsProject.instance().addMapLayer(rlayer)
    layer = QgsVectorLayer("Polygon?crs=EPSG:32633", "examples", "memory")
    f = QgsFeature(layer.fields())
    f.setGeometry(QgsGeometry.fromRect(QgsRectangle(*RED_BOX)))
    layer.dataProvider().addFeatures([f])
    QgsProject.instance().addMapLayer(layer)
    if select:
        layer.selectAll()
    qgis_iface.setActiveLayer(layer)
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(rlayer)
    dock.query_combo.setEditText("the red square")
    dock.dev_model_combo.setEditText("test-tiny")
    dock.teach_part._iface = qgis_iface
    return dock


def test_teach_adapts_and_sets_the_checkpoint(plugin, qgis_iface, red_square_tif) -> None:
    dock = _setup(plugin, qgis_iface, red_square_tif)
    part = dock.teach_part
    part.max_steps = 3
    statuses: list[str] = []
    part.button.click()
    assert part.task is not None and not dock.run_button.isEnabled()
    part.task.stage_changed.connect(lambda _k, t: statuses.append(t))
    assert wait_for(lambda: part.task is None, 300), "the adaptation did not finish"
    out = Path(dock.checkpoint_widget.filePath())
    assert out.is_file() and out.name.startswith("red_square_the_red_square_adapted")
    assert any("hold-out IoU" in m for m in messages(qgis_iface, "Success")), \
        messages(qgis_iface, "Success")
    assert dock.run_button.isEnabled() and part.button.isEnabled()
    assert any(s.startswith("Training: minute 1 of") for s in statuses), statuses
    from backend.model.checkpoint import read_header

    assert read_header(out).metadata["adaptation"]["texts"] == ["the red square"]
    out.unlink()


def test_teach_cancel_writes_nothing(plugin, qgis_iface, red_square_tif) -> None:
    dock = _setup(plugin, qgis_iface, red_square_tif)
    part = dock.teach_part
    part.max_steps = 100000
    part.button.click()
    task = part.task
    assert task is not None
    assert wait_for(lambda: dock.status_label.text().startswith("Training"), 300)
    dock.cancel_button.click()
    assert wait_for(lambda: part.task is None, 120)
    assert list(red_square_tif.parent.glob("*.safetensors")) == []
    assert any("cancelled" in m for m in messages(qgis_iface, "Info"))


def test_teach_without_text_or_polygon_layer_says_why(plugin, qgis_iface, red_square_tif) -> None:
    dock = _setup(plugin, qgis_iface, red_square_tif)
    dock.query_combo.setEditText("")
    dock.teach_part.button.click()
    assert dock.teach_part.task is None
    assert any("Find" in m for m in messages(qgis_iface, "Warning"))
    dock.query_combo.setEditText("the red square")
    qgis_iface.setActiveLayer(dock.layer_combo.currentLayer())  # a raster: not examples
    dock.teach_part.button.click()
    assert dock.teach_part.task is None
    assert any("polygon layer" in m for m in messages(qgis_iface, "Warning"))
    assert list(red_square_tif.parent.glob("*.safetensors")) == []
