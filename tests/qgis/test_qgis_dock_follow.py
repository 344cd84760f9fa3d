"""The dock follows the project while it is open: layers added, removed and renamed."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis


def _raster(path: Path, name: str):
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid()
    return layer


def _combo_texts(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_raster_added_after_the_dock_opened_is_chosen_and_runs(
    plugin, qgis_iface, red_square_tif
) -> None:
    from qgis.core import QgsProject

    dock = plugin.show_dock()  # empty project: nothing to choose yet
    assert dock.layer_combo.currentLayer() is None
    first = _raster(red_square_tif, "first")
    QgsProject.instance().addMapLayer(first)
    assert dock.layer_combo.currentLayer() is first
    dock.query_combo.setEditText("red")
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("layer"))
    dock.dev_model_combo.setEditText("standin:red")
    assert dock.build_request().raster_layer_id == first.id()  # Run no longer refuses
    # a second raster does not replace the user's (or the first) choice
    second = _raster(red_square_tif, "second")
    QgsProject.instance().addMapLayer(second)
    assert dock.layer_combo.currentLayer() is first
    # renamed: the list shows the new name
    first.setName("renamed")
    assert "renamed" in _combo_texts(dock.layer_combo)
    assert "first" not in _combo_texts(dock.layer_combo)
    # removed: the picker moves on to the raster that is left, then to nothing
    QgsProject.instance().removeMapLayer(first.id())
    assert dock.layer_combo.currentLayer() is second
    QgsProject.instance().removeMapLayer(second.id())
    assert dock.layer_combo.currentLayer() is None
    assert _combo_texts(dock.layer_combo) == [""]


def test_a_vector_layer_added_does_not_change_the_raster_choice(
    plugin, qgis_iface, red_square_tif
) -> None:
    from qgis.core import QgsProject, QgsVectorLayer

    dock = plugin.show_dock()
    vector = QgsVectorLayer("Polygon?crs=EPSG:32633", "aoi", "memory")
    QgsProject.instance().addMapLayer(vector)
    assert dock.layer_combo.currentLayer() is None
    raster = _raster(red_square_tif, "r")
    QgsProject.instance().addMapLayer(raster)
    assert dock.layer_combo.currentLayer() is raster


def test_the_dock_comes_back_after_a_restart_when_it_was_open(
    qgis_iface, clean_project, monkeypatch
) -> None:
    """The open/closed state is remembered (user actions only) and restored by initGui."""
    from qgis.core import QgsSettings

    import rs2sam_qgis
    from rs2sam_qgis.plugin import DOCK_OPEN_KEY

    monkeypatch.setenv("RS2SAM_DEV_MODELS", "1")
    QgsSettings().remove("rs2sam")
    window = qgis_iface.mainWindow()
    was_visible = window.isVisible()
    window.show()
    try:
        first = rs2sam_qgis.classFactory(qgis_iface)
        first.initGui()
        assert first.dock is None  # nothing remembered: no dock at start
        first.action.trigger()  # the user opens it
        assert QgsSettings().value(DOCK_OPEN_KEY, False, type=bool) is True
        first.unload()  # QGIS quits with the dock open
        reloaded = rs2sam_qgis.classFactory(qgis_iface)
        reloaded.initGui()  # a plugin reload in a running QGIS opens nothing by itself
        assert reloaded.dock is None
        reloaded.unload()
        window.hide()  # the next start: QGIS loads plugins before it shows its window
        second = rs2sam_qgis.classFactory(qgis_iface)
        second.initGui()
        assert second.dock is not None and not second.dock.isHidden()
        window.show()
        assert second.action.isChecked()
        second.dock.close()  # the user closes it
        assert QgsSettings().value(DOCK_OPEN_KEY, True, type=bool) is False
        second.unload()
        window.hide()
        third = rs2sam_qgis.classFactory(qgis_iface)
        third.initGui()
        assert third.dock is None
        third.unload()
    finally:
        if not was_visible:
            window.hide()
        QgsSettings().remove("rs2sam")
