"""The dock in real QGIS: inputs -> request, and every refusal shows a message and adds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis_helpers import messages

pytestmark = pytest.mark.qgis


def _add_raster(path: Path, name: str = "red"):
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def _layer_names() -> list[str]:
    from qgis.core import QgsProject

    return sorted(layer.name() for layer in QgsProject.instance().mapLayers().values())


def _zoom_to(iface, layer) -> None:
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    canvas.refresh()


def test_dock_defaults_to_the_active_raster_layer(plugin, qgis_iface, red_square_tif) -> None:
    layer = _add_raster(red_square_tif)
    other = _add_raster(red_square_tif, "other")
    qgis_iface.setActiveLayer(layer)
    dock = plugin.show_dock()
    assert dock.layer_combo.currentLayer() is layer
    qgis_iface.setActiveLayer(other)
    plugin.show_dock()
    assert dock.layer_combo.currentLayer() is other
    assert dock.extent_combo.currentData() == "canvas"  # visible map extent by default
    assert dock.threads_spin.value() >= 1


def test_no_raster_layer_shows_a_message_and_adds_nothing(plugin, qgis_iface) -> None:
    dock = plugin.show_dock()
    dock.query_combo.setEditText("the buildings")
    dock.run_button.click()
    warnings = messages(qgis_iface, "Warning")
    assert any("raster layer" in m for m in warnings), warnings
    assert "raster layer" in dock.status_label.text()
    assert plugin.controller.task is None
    assert _layer_names() == []


def test_empty_text_shows_a_message_and_adds_nothing(plugin, qgis_iface, red_square_tif) -> None:
    layer = _add_raster(red_square_tif)
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(layer)
    dock.query_combo.setEditText("   ")
    dock.run_button.click()
    assert any("Type what to segment" in m for m in messages(qgis_iface, "Warning"))
    assert plugin.controller.task is None
    assert _layer_names() == ["red"]


def test_missing_checkpoint_shows_a_message_and_adds_nothing(
    plugin, qgis_iface, red_square_tif, tmp_path
) -> None:
    layer = _add_raster(red_square_tif)
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(layer)
    dock.query_combo.setEditText("the red square")
    missing = tmp_path / "nope.safetensors"
    dock.checkpoint_widget.setFilePath(str(missing))
    dock.run_button.click()
    warnings = messages(qgis_iface, "Warning")
    assert any("Checkpoint file not found" in m and str(missing) in m for m in warnings), warnings
    assert plugin.controller.task is None
    assert _layer_names() == ["red"]


def test_no_bundled_weights_is_reported_not_replaced_by_a_random_model(
    plugin, qgis_iface, red_square_tif, monkeypatch
) -> None:
    """Without a checkpoint and without bundled weights the dock refuses (no silent test-tiny)."""
    import rs2sam_qgis.dock
    import rs2sam_qgis.models

    monkeypatch.setattr(rs2sam_qgis.models, "bundled_checkpoint", lambda: None)
    monkeypatch.setattr(rs2sam_qgis.dock, "bundled_checkpoint", lambda: None)
    layer = _add_raster(red_square_tif)
    dock = plugin.show_dock()
    dock._update_model_info()
    assert "No bundled weights" in dock.model_info.text()
    dock.layer_combo.setLayer(layer)
    dock.query_combo.setEditText("the red square")
    dock.dev_model_combo.setCurrentIndex(0)  # developer models off
    dock.run_button.click()
    assert any("no bundled weights" in m for m in messages(qgis_iface, "Warning"))
    assert plugin.controller.task is None


def test_developer_models_are_hidden_unless_switched_on(
    qgis_iface, clean_project, monkeypatch
) -> None:
    from qgis.core import QgsSettings

    import rs2sam_qgis

    monkeypatch.delenv("RS2SAM_DEV_MODELS", raising=False)
    QgsSettings().remove("rs2sam")
    instance = rs2sam_qgis.classFactory(qgis_iface)
    instance.initGui()
    try:
        dock = instance.show_dock()
        assert dock.dev_model_combo.isHidden()
        assert dock._dev_model() == ""
        dock.dev_model_combo.setEditText("test-tiny")  # even if set programmatically
        assert dock._dev_model() == ""
    finally:
        instance.unload()


def test_request_for_the_visible_extent_uses_the_canvas_crs(
    plugin, qgis_iface, red_square_tif, tmp_path
) -> None:
    from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle

    from rs2sam_qgis.request import FileSource

    layer = _add_raster(red_square_tif)
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    canvas.setExtent(QgsRectangle(1_670_000, 4_400_000, 1_690_000, 4_420_000))
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(layer)
    dock.query_combo.setEditText("  the   red square ")
    dock.output_dir_widget.setFilePath(str(tmp_path / "out"))
    dock.dev_model_combo.setEditText("standin:red")
    # place the canvas over the raster (EPSG:32633 -> 3857)
    from qgis.core import QgsCoordinateTransform, QgsProject

    to_canvas = QgsCoordinateTransform(
        layer.crs(), canvas.mapSettings().destinationCrs(), QgsProject.instance()
    )
    canvas.setExtent(to_canvas.transformBoundingBox(layer.extent()))
    request = dock.build_request()
    assert request.text == "the red square"
    assert isinstance(request.source, FileSource)
    assert Path(request.source.path) == red_square_tif
    assert request.bbox_crs == "EPSG:3857"
    visible = canvas.extent()
    assert request.bbox == pytest.approx(
        (visible.xMinimum(), visible.yMinimum(), visible.xMaximum(), visible.yMaximum())
    )
    assert Path(request.out_path).parent == tmp_path / "out"
    assert request.out_path.endswith(".gpkg") and "the_red_square" in request.out_path
    assert request.model.standin == "red"
    assert request.raster_layer_id == layer.id()
    assert "stand-in" in request.layer_name


def test_request_full_layer_and_selected_polygon(plugin, qgis_iface, red_square_tif) -> None:
    from qgis.core import QgsFeature, QgsGeometry, QgsProject, QgsVectorLayer

    layer = _add_raster(red_square_tif)
    _zoom_to(qgis_iface, layer)
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(layer)
    dock.query_combo.setEditText("red")
    dock.memory_checkbox.setChecked(True)
    dock.dev_model_combo.setEditText("standin:red")
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("layer"))
    request = dock.build_request()
    assert request.bbox is None and request.bbox_crs is None and request.memory_layer

    aoi = QgsVectorLayer("Polygon?crs=EPSG:4326", "aoi", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt("POLYGON((15 37, 15.001 37, 15.001 37.001, 15 37))"))
    aoi.dataProvider().addFeatures([feature])
    QgsProject.instance().addMapLayer(aoi)
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("selection"))
    dock.aoi_layer_combo.setLayer(aoi)
    dock.run_button.click()  # nothing selected -> message
    assert any("Select one or more polygons" in m for m in messages(qgis_iface, "Warning"))
    # a selected polygon far away from the raster -> "does not overlap"
    aoi.selectAll()
    dock.run_button.click()
    assert any("does not overlap" in m for m in messages(qgis_iface, "Warning"))
    assert plugin.controller.task is None


def test_recent_queries_are_remembered_in_qgssettings(plugin) -> None:
    from rs2sam_qgis.settings import load_settings, save_settings

    dock = plugin.show_dock()
    for text in ("a", "b", "a"):
        dock.remember_query(text)
    save_settings(dock.settings)
    assert load_settings().recent_queries[:2] == ["a", "b"]
    assert [dock.query_combo.itemText(i) for i in range(dock.query_combo.count())] == ["a", "b"]


def test_missing_dependencies_short_message_install_button_details_in_log(
    plugin, qgis_iface, red_square_tif, monkeypatch, tmp_path
) -> None:
    """Message bar and status line stay short; the dock offers the installer; the log has the
    full story with QGIS's own interpreter and the plugin's private folder."""
    from qgis.core import QgsApplication

    import rs2sam_qgis.deps as deps
    from rs2sam_qgis.interpreter import qgis_python

    monkeypatch.setenv("RS2SAM_DEPS_DIR", str(tmp_path / "deps"))
    logged: list[str] = []
    log = QgsApplication.messageLog()
    slot = lambda message, tag, level: logged.append(message) if tag == "RS2-SAM" else None  # noqa: E731
    log.messageReceived.connect(slot)
    real = deps._installed
    monkeypatch.setattr(deps, "_installed", lambda name: name != "sam2" and real(name))
    layer = _add_raster(red_square_tif)
    _zoom_to(qgis_iface, layer)
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(layer)
    dock.query_combo.setEditText("red")
    dock.dev_model_combo.setEditText("standin:red")
    dock.run_button.click()
    log.messageReceived.disconnect(slot)
    (critical,) = messages(qgis_iface, "Critical")
    assert "sam2" in critical and "Install dependencies" in critical and len(critical) < 200
    assert dock.status_label.text() == "Python packages missing: sam2."
    assert not dock.deps_box.isHidden() and dock.install_button.isEnabled()
    assert "sam2" in dock.deps_label.text()
    (details,) = [m for m in logged if "cannot run in this QGIS Python" in m]
    python = qgis_python().path
    assert f"{python} -m pip install" in details
    assert f"--target {tmp_path / 'deps'}" in details  # the private folder, never site-packages
    assert "--no-deps --no-build-isolation sam2==1.1.0" in details
    assert "'numpy>=" in details and ",<2'" in details
    assert plugin.controller.task is None
    assert _layer_names() == ["red"]


def test_dependency_report_for_numpy2_with_gdal_built_for_numpy1(monkeypatch) -> None:
    """numpy >= 2 and a failing osgeo.gdal_array -> the problem is named, the pin is numpy<2."""
    import builtins
    import sys

    import numpy

    import rs2sam_qgis.deps as deps

    monkeypatch.setattr(numpy, "__version__", "2.1.3")
    monkeypatch.delitem(sys.modules, "osgeo.gdal_array", raising=False)
    real_import = builtins.__import__

    def fake_import(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "osgeo" and fromlist and "gdal_array" in fromlist:
            raise ImportError("numpy.core.multiarray failed to import")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    report = deps.check_dependencies()
    assert not report.ok
    assert any("built for NumPy 1.x" in p for p in report.problems)
    commands = "\n".join(report.install_commands())
    assert "-m pip install" in commands and "'numpy>=1.24.4,<2'" in commands


def test_missing_published_weights_packages_are_named_but_optional(monkeypatch) -> None:
    """torchscale/sentencepiece only serve the published weights: named, never blocking."""
    import rs2sam_qgis.deps as deps

    real = deps._installed
    optional = {"torchscale", "sentencepiece"}
    monkeypatch.setattr(deps, "_installed", lambda name: name not in optional and real(name))
    report = deps.check_dependencies()
    assert set(report.optional_missing) == optional
    assert "torchscale==0.3.0" in report.optional_command()
    assert "--no-deps" in report.optional_command()
    assert report.ok == (not report.problems)
    monkeypatch.setattr(
        deps, "_installed", lambda name: name not in optional | {"sam2"} and real(name)
    )
    report = deps.check_dependencies()
    assert not report.ok
    assert "published RS2-SAM 2 weights" in report.message()
    assert "sentencepiece==0.2.3" in report.message()
