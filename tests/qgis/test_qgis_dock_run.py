"""Dock queries end to end in real QGIS (offscreen): stand-in, test-tiny, cancel, failures."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from qgis_helpers import (
    DEMO_RASTER,
    ORIGIN_X,
    ORIGIN_Y,
    PIXEL,
    RED_AREA_M2,
    RED_BOX,
    card_weights_sha256,
    messages,
    red_square_image,
    wait_for,
    write_geotiff,
)

pytestmark = pytest.mark.qgis


def _add_raster(path: Path, name: str = "red"):
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def _show_on_canvas(iface, layer, crs: str | None = None) -> None:
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject

    canvas = iface.mapCanvas()
    target = QgsCoordinateReferenceSystem(crs) if crs else layer.crs()
    canvas.setDestinationCrs(target)
    extent = QgsCoordinateTransform(
        layer.crs(), target, QgsProject.instance()
    ).transformBoundingBox(layer.extent())
    extent.scale(1.1)
    canvas.setExtent(extent)


def _layers() -> dict:
    from qgis.core import QgsProject

    return dict(QgsProject.instance().mapLayers())


def _run(plugin, text: str, model: str, timeout: float = 120.0, **widgets) -> object:
    """Fill the dock, click Run, wait for the task; return the finished task (or None)."""
    dock = plugin.show_dock()
    dock.query_combo.setEditText(text)
    dock.dev_model_combo.setEditText(model)
    for name, value in widgets.items():
        widget = getattr(dock, name)
        if name == "extent_combo":
            widget.setCurrentIndex(widget.findData(value))
        elif name in ("output_dir_widget", "checkpoint_widget"):
            widget.setFilePath(str(value))
        elif name == "memory_checkbox":
            widget.setChecked(value)
        else:
            widget.setValue(value)
    dock.run_button.click()
    task = plugin.controller.task
    assert wait_for(lambda: plugin.controller.task is None, timeout), "the run did not finish"
    return task


def test_standin_query_adds_one_layer_with_the_red_square(
    plugin, qgis_iface, red_square_tif, tmp_path
) -> None:
    from qgis.core import QgsGeometry, QgsProject, QgsRectangle

    raster = _add_raster(red_square_tif)
    _show_on_canvas(qgis_iface, raster, "EPSG:3857")  # canvas CRS differs from the raster's
    plugin.show_dock().layer_combo.setLayer(raster)
    before = _layers()
    task = _run(plugin, "the red square", "standin:red", output_dir_widget=tmp_path / "out")
    assert task.outcome is not None and task.outcome.polygons == 1
    added = [layer for key, layer in _layers().items() if key not in before]
    assert len(added) == 1
    result = added[0]
    assert result.name() == "the red square [stand-in red]"
    assert result.crs().authid() == "EPSG:32633"  # the raster's CRS, not the canvas'
    assert result.featureCount() == 1
    assert Path(result.source().split("|")[0]).parent == tmp_path / "out"
    feature = next(result.getFeatures())
    expected = QgsGeometry.fromRect(QgsRectangle(*RED_BOX))
    assert feature.geometry().symDifference(expected).area() < 1e-6
    assert feature["prompt"] == "the red square"
    assert feature["score"] == pytest.approx(1.0)
    assert feature["area_m2"] == pytest.approx(RED_AREA_M2, rel=2e-3)  # geodesic, not planar
    assert feature["model"] == "standin-red"
    assert feature["checkpoint_sha256"] == ""
    # above the raster in the layer tree, semi-transparent fill
    order = [node.layerId() for node in QgsProject.instance().layerTreeRoot().findLayers()]
    assert order.index(result.id()) == order.index(raster.id()) - 1
    fill = result.renderer().symbol().color()
    assert 0 < fill.alpha() < 255
    success = messages(qgis_iface, "Success")
    assert any("1 polygon(s)" in m and "256 m²" in m for m in success), success


def test_working_resolution_reaches_the_backend_and_is_remembered(
    plugin, qgis_iface, red_square_tif, tmp_path
) -> None:
    from rs2sam_qgis.settings import load_settings

    raster = _add_raster(red_square_tif)
    _show_on_canvas(qgis_iface, raster)
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(raster)
    assert dock.gsd_spin.value() == 0.0 and dock.gsd_spin.text() == "Model's own"
    task = _run(plugin, "red", "standin:red", gsd_spin=2.0, output_dir_widget=tmp_path / "out")
    assert task.outcome is not None and task.outcome.polygons == 1
    assert task.request.gsd_m == 2.0
    feature = next(_read_gpkg(task.outcome.out_path).getFeatures())
    assert feature["gsd_m"] == pytest.approx(2.0)  # resampled to 2 m/px, not the native 1 m
    assert load_settings().gsd_m == 2.0
    task = _run(plugin, "red", "standin:red", gsd_spin=0.0, output_dir_widget=tmp_path / "out")
    assert task.request.gsd_m is None  # "Model's own": the backend's "auto"
    feature = next(_read_gpkg(task.outcome.out_path).getFeatures())
    assert feature["gsd_m"] == pytest.approx(1.0, rel=1e-3)  # stand-in: native pixels


def _read_gpkg(path: str):
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(path, "out", "ogr")
    assert layer.isValid(), path
    return layer


def test_memory_layer_and_selected_polygon_clip(plugin, qgis_iface, red_square_tif) -> None:
    from qgis.core import QgsFeature, QgsGeometry, QgsProject, QgsRectangle, QgsVectorLayer

    raster = _add_raster(red_square_tif)
    _show_on_canvas(qgis_iface, raster)
    aoi = QgsVectorLayer("Polygon?crs=EPSG:32633", "aoi", "memory")
    left_half = QgsRectangle(RED_BOX[0] - 5, RED_BOX[1] - 5, RED_BOX[0] + 8, RED_BOX[3] + 5)
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(left_half))
    aoi.dataProvider().addFeatures([feature])
    QgsProject.instance().addMapLayer(aoi)
    aoi.selectAll()
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(raster)
    dock.aoi_layer_combo.setLayer(aoi)
    before = _layers()
    task = _run(plugin, "red", "standin:red", extent_combo="selection", memory_checkbox=True)
    assert task.outcome is not None, plugin.dock.status_label.text()
    (result,) = [layer for key, layer in _layers().items() if key not in before]
    assert result.providerType() == "memory"
    assert not Path(task.request.out_path).exists()  # the temp file is gone
    (clipped,) = list(result.getFeatures())
    box = clipped.geometry().boundingBox()
    assert (box.xMinimum(), box.xMaximum()) == pytest.approx((RED_BOX[0], RED_BOX[0] + 8))
    assert clipped["area_m2"] == pytest.approx(RED_AREA_M2 / 2, rel=2e-3)


def test_nothing_found_adds_no_layer_and_says_so(plugin, qgis_iface, red_square_tif, tmp_path):
    raster = _add_raster(red_square_tif)
    _show_on_canvas(qgis_iface, raster)
    plugin.show_dock().layer_combo.setLayer(raster)
    before = _layers()
    task = _run(plugin, "nothing", "standin:constant:0.2", output_dir_widget=tmp_path / "out")
    assert task.outcome is not None and task.outcome.polygons == 0
    assert _layers().keys() == before.keys()
    assert not Path(task.request.out_path).exists()
    assert any("Nothing found for 'nothing'" in m for m in messages(qgis_iface, "Info"))


def test_default_output_next_to_the_project_else_a_temporary_layer(
    plugin, qgis_iface, red_square_tif, tmp_path, monkeypatch
) -> None:
    """No output folder chosen: an unsaved project gets a temporary (memory) layer that QGIS
    will not ask about on exit, nothing in the temp folder, and the dock says how to keep it;
    a saved project writes next to its file; an existing result is never overwritten."""
    import tempfile

    from qgis.core import QgsProject

    from rs2sam_qgis.layer_input import output_path
    from rs2sam_qgis.layers import SKIP_MEMORY_CHECK

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    raster = _add_raster(red_square_tif)
    _show_on_canvas(qgis_iface, raster)
    plugin.show_dock().layer_combo.setLayer(raster)
    assert plugin.dock.output_dir_widget.filePath() == ""  # default preferences

    before = _layers()
    task = _run(plugin, "the red square", "standin:red")
    assert task.outcome is not None, plugin.dock.status_label.text()
    assert task.request.memory_layer
    (added,) = [layer for key, layer in _layers().items() if key not in before]
    assert added.providerType() == "memory" and added.featureCount() == 1
    assert added.customProperty(SKIP_MEMORY_CHECK) == 1  # no "temporary layers" question
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing left in the temp folder
    assert "Make Permanent" in plugin.dock.status_label.text()
    assert messages(qgis_iface, "Warning") == []  # a normal result, not a warning

    (tmp_path / "project").mkdir()
    QgsProject.instance().setFileName(str(tmp_path / "project" / "p.qgz"))
    task = _run(plugin, "the red square", "standin:red")
    assert task.outcome is not None, plugin.dock.status_label.text()
    second = Path(task.request.out_path)
    assert second.parent == tmp_path / "project" and second.is_file()
    assert not task.request.memory_layer
    assert "Make Permanent" not in plugin.dock.status_label.text()

    taken = output_path(tmp_path / "project", "the red square")
    taken.write_bytes(b"earlier result")
    assert output_path(tmp_path / "project", "the red square") != taken
    assert taken.read_bytes() == b"earlier result"


def test_stage_texts_during_a_run_and_unique_layer_names(
    plugin, qgis_iface, red_square_tif, tmp_path, monkeypatch
) -> None:
    """The status line names each stage (the cold model load with a busy bar, tiles k of n,
    vectorising, writing); the same query twice gives 'name' and 'name (2)'."""
    from rs2sam_qgis.models import CACHE

    CACHE.clear()
    raster = _add_raster(red_square_tif)
    _show_on_canvas(qgis_iface, raster)
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(raster)
    seen: list[tuple[str, str, int]] = []
    real = dock.set_stage

    def record(key: str, text: str) -> None:
        real(key, text)
        seen.append((key, dock.status_label.text(), dock.progress_bar.maximum()))

    monkeypatch.setattr(dock, "set_stage", record)
    names = []
    for _ in range(2):
        before = _layers()
        task = _run(
            plugin,
            "the red square",
            "standin:sleep:0.01:32",  # 32 px tiles: several tiles on the 64 px raster
            extent_combo="layer",
            output_dir_widget=tmp_path / "out",
        )
        assert task.outcome is not None, dock.status_label.text()
        (added,) = [layer for key, layer in _layers().items() if key not in before]
        names.append(added.name())
    assert names == ["the red square [stand-in sleep:0.01:32]"] * 1 + [
        "the red square [stand-in sleep:0.01:32] (2)"
    ]
    keys = [key for key, _text, _max in seen]
    first_run = keys[: keys.index("write") + 1]
    assert first_run[:2] == ["load", "read"] and first_run[-2:] == ["vectorize", "write"]
    tiles = [text for key, text, _max in seen[: len(first_run)] if key == "tiles"]
    n = len(tiles)
    assert n >= 4 and tiles == [f"Segmenting: tile {k} of {n}…" for k in range(1, n + 1)]
    load_text, load_max = seen[0][1], seen[0][2]
    assert "first query" in load_text and load_max == 0  # busy bar while the model loads
    assert seen[len(first_run)][1] == "Loading the model…"  # second run: cached
    assert all(maximum == 100 for key, _t, maximum in seen if key != "load")
    assert dock.progress_bar.maximum() == 100 and dock.progress_bar.value() == 100


def test_cancel_adds_nothing_and_leaves_no_file(plugin, qgis_iface, tmp_path) -> None:
    image = red_square_image(256)
    path = write_geotiff(tmp_path / "big.tif", image, (ORIGIN_X, ORIGIN_Y), PIXEL, 32633)
    raster = _add_raster(path, "big")
    _show_on_canvas(qgis_iface, raster)
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(raster)
    dock.query_combo.setEditText("red")
    dock.dev_model_combo.setEditText("standin:sleep:0.4:64")  # >= 16 tiles of 0.4 s
    from rs2sam_qgis.models import CACHE

    CACHE.clear()
    dock.output_dir_widget.setFilePath(str(tmp_path / "out"))
    before = _layers()
    dock.run_button.click()
    task = plugin.controller.task
    assert task is not None
    assert not dock.run_button.isEnabled() and dock.cancel_button.isEnabled()
    dock.run_button.click()  # a second click while running is refused (one run per dock)
    assert plugin.controller.task is task
    assert wait_for(lambda: task.progress() > 10, 30)
    dock.cancel_button.click()
    assert wait_for(lambda: plugin.controller.task is None, 60)
    from rs2sam_qgis.models import CACHE

    (segmenter,) = [s for (choice, *_), s in CACHE._items.items() if choice.standin]
    assert 1 <= segmenter.calls < 16  # stopped between tiles: 256 px / 64 px tiles >= 16 tiles
    assert _layers().keys() == before.keys()
    assert not Path(task.request.out_path).exists()
    assert any("Cancelled" in m for m in messages(qgis_iface, "Info"))
    assert dock.run_button.isEnabled()


def test_backend_error_shows_a_message_logs_details_and_adds_nothing(
    plugin, qgis_iface, red_square_tif, tmp_path
) -> None:
    from qgis.core import QgsApplication

    logged: list[tuple[str, str]] = []

    def on_message(message, tag, _level):
        logged.append((tag, message))

    QgsApplication.messageLog().messageReceived.connect(on_message)
    try:
        raster = _add_raster(red_square_tif)
        _show_on_canvas(qgis_iface, raster)
        plugin.show_dock().layer_combo.setLayer(raster)
        bad = tmp_path / "broken.safetensors"
        bad.write_bytes(b"not a checkpoint")
        before = _layers()
        task = _run(plugin, "red", "", checkpoint_widget=bad)
        assert task.outcome is None
        assert _layers().keys() == before.keys()
        critical = messages(qgis_iface, "Critical")
        assert any("broken.safetensors" in m for m in critical), critical
        wait_for(lambda: any(t == "RS2-SAM" and "Traceback" in m for t, m in logged), 5)
        assert any(t == "RS2-SAM" and "Traceback" in m for t, m in logged)
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(on_message)


def test_test_tiny_cold_then_warm_and_gui_responsiveness(
    plugin, qgis_iface, tmp_path, record_property
) -> None:
    """test-tiny (random init) through the dock twice: one layer each, the second reuses the
    model; a 50 ms QTimer keeps ticking during the run (worst gap is recorded, not asserted)."""
    from qgis.PyQt.QtCore import QTimer

    from rs2sam_qgis.models import CACHE

    CACHE.clear()
    path = write_geotiff(
        tmp_path / "tiny.tif", red_square_image(256), (ORIGIN_X, ORIGIN_Y), PIXEL, 32633
    )
    raster = _add_raster(path, "tiny")
    _show_on_canvas(qgis_iface, raster)
    plugin.show_dock().layer_combo.setLayer(raster)
    timings = []
    for round_ in ("cold", "warm"):
        gaps: list[float] = []
        last = [time.perf_counter()]

        def tick(gaps=gaps, last=last):
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        timer = QTimer()
        timer.setInterval(50)
        timer.timeout.connect(tick)
        timer.start()
        last[0] = time.perf_counter()
        before = _layers()
        start = time.perf_counter()
        task = _run(
            plugin,
            f"anything {round_}",
            "test-tiny",
            threshold_spin=0.01,
            output_dir_widget=tmp_path / "out",
        )
        wall = time.perf_counter() - start
        timer.stop()
        assert task.outcome is not None, plugin.dock.status_label.text()
        added = [layer for key, layer in _layers().items() if key not in before]
        assert len(added) == 1 and added[0].crs().authid() == "EPSG:32633"
        assert next(added[0].getFeatures())["model"] == "test-tiny"
        timings.append(
            {
                "round": round_,
                "wall_s": round(wall, 3),
                "run_s": round(task.outcome.seconds, 3),
                "load_s": round(task.outcome.load_seconds, 3),
                "worst_timer_gap_ms": round(1000 * max(gaps), 1),
                "ticks": len(gaps),
            }
        )
        assert len(gaps) >= 1  # the event loop ran during the task
    assert timings[0]["load_s"] > 0 and timings[1]["load_s"] == 0.0  # cached, not reloaded
    assert len(CACHE) == 1
    import torch

    from rs2sam_qgis import runner

    # OpenMP thread counts are per thread: ask the backend worker thread, where inference ran
    worker = runner._executor["pool"]
    assert worker.submit(torch.get_num_threads).result() == 1  # the dock's setting reached torch
    record_property("test_tiny_timings", json.dumps(timings))
    print("test-tiny in QGIS:", json.dumps(timings))


def test_web_xyz_layer_is_read_through_the_provider(plugin, qgis_iface, tmp_path) -> None:
    """An XYZ layer (no local file) is read through a cloned provider at canvas resolution."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsRasterLayer, QgsRectangle
    from qgis_helpers import write_xyz_tiles, xyz_red_bounds, xyz_tile_bounds

    from rs2sam_qgis.request import ProviderSource

    uri = write_xyz_tiles(tmp_path / "tiles")
    from qgis.core import QgsProject

    layer = QgsRasterLayer(uri, "xyz", "wms")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    qgis_iface.mainWindow().show()  # a hidden canvas has a 98 x 28 px output size
    wait_for(lambda: qgis_iface.mapCanvas().mapSettings().outputSize().width() > 500, 5)
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    canvas.setExtent(QgsRectangle(*xyz_tile_bounds()))
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(layer)
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("layer"))
    dock.query_combo.setEditText("red")
    dock.dev_model_combo.setEditText("standin:red")
    dock.run_button.click()  # full extent of a tile layer is refused with a message
    assert any("web/tile layer" in m for m in messages(qgis_iface, "Warning"))
    assert plugin.controller.task is None

    before = _layers()
    task = _run(
        plugin, "red", "standin:red", extent_combo="canvas", output_dir_widget=tmp_path / "out"
    )
    assert isinstance(task.request.source, ProviderSource)
    assert task.outcome is not None, plugin.dock.status_label.text()
    (result,) = [lyr for key, lyr in _layers().items() if key not in before]
    assert result.crs().authid() == "EPSG:3857"
    (feature,) = list(result.getFeatures())
    box = feature.geometry().boundingBox()
    pixel = canvas.mapUnitsPerPixel()
    expected = xyz_red_bounds()
    got = (box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum())
    assert got == pytest.approx(expected, abs=2.5 * pixel)
    assert feature["source"] == "xyz"


def test_bundled_weights_cold_then_warm_on_the_demo_geotiff(
    plugin, qgis_iface, tmp_path, record_property
) -> None:
    """No checkpoint chosen = the bundled weights, on the real demo GeoTIFF (413 x 426 px,
    0.27 m, EPSG:26911; about one 256 px tile at the model's 1 m): one layer in the raster's
    CRS, model `nano` and the model card's weights sha256; the second run reuses the model."""
    import shutil

    from rs2sam_qgis.models import CACHE, ModelChoice

    CACHE.clear()
    copy = shutil.copy(DEMO_RASTER, tmp_path)  # QGIS writes a .aux.xml next to what it reads
    raster = _add_raster(Path(copy), "las vegas")
    _show_on_canvas(qgis_iface, raster, "EPSG:3857")  # canvas CRS differs from the raster's
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(raster)
    assert dock.checkpoint_widget.filePath() == ""  # default preferences: bundled weights
    expected_sha = card_weights_sha256()
    timings = []
    for round_, name in (("cold", "buildings"), ("warm", "buildings (2)")):
        before = _layers()
        start = time.perf_counter()
        task = _run(
            plugin,
            "buildings",
            "",  # developer model off
            threshold_spin=0.01,  # any polygon will do: this checks wiring, not quality
            output_dir_widget=tmp_path / "out",
        )
        wall = time.perf_counter() - start
        assert task.outcome is not None, plugin.dock.status_label.text()
        assert task.request.model == ModelChoice()  # checkpoint=None: the bundled weights
        assert task.outcome.polygons >= 1
        added = [layer for key, layer in _layers().items() if key not in before]
        assert len(added) == 1
        result = added[0]
        assert result.crs() == raster.crs() and result.crs().authid() == "EPSG:26911"
        # no "random weights" / "stand-in" label; the second result gets a unique name
        assert result.name() == name
        features = list(result.getFeatures())
        assert len(features) == task.outcome.polygons
        assert {f["model"] for f in features} == {"nano"}
        assert {f["checkpoint_sha256"] for f in features} == {expected_sha}
        timings.append(
            {
                "round": round_,
                "wall_s": round(wall, 3),
                "run_s": round(task.outcome.seconds, 3),
                "load_s": round(task.outcome.load_seconds, 3),
                "polygons": task.outcome.polygons,
            }
        )
    assert timings[0]["load_s"] > 0 and timings[1]["load_s"] == 0.0  # cached, not reloaded
    assert len(CACHE) == 1
    ((choice, *_key), segmenter) = next(iter(CACHE._items.items()))
    assert choice == ModelChoice() and segmenter.checkpoint_sha256 == expected_sha
    record_property("bundled_weights_timings", json.dumps(timings))
    print("bundled weights in QGIS:", json.dumps(timings))


def test_the_bundled_model_gets_its_own_words_and_the_dock_says_so(
    plugin, qgis_iface, tmp_path
) -> None:
    """'lake' is not in the bundled weights' training captions: the lexicon gives the model
    'water', and the message bar and the dock's status line say so."""
    import shutil

    copy = shutil.copy(DEMO_RASTER, tmp_path)
    raster = _add_raster(Path(copy), "las vegas")
    _show_on_canvas(qgis_iface, raster)
    plugin.show_dock().layer_combo.setLayer(raster)
    task = _run(plugin, "the lake", "", threshold_spin=0.01, output_dir_widget=tmp_path / "out")
    assert task.outcome is not None, plugin.dock.status_label.text()
    assert task.outcome.prompt_used == "the water"
    assert len(task.outcome.warnings) == 1 and "lake \u2192 water" in task.outcome.warnings[0]
    warnings = [m for m in messages(qgis_iface, "Warning") if "lake \u2192 water" in m]
    assert len(warnings) == 1, messages(qgis_iface, "Warning")
    assert "lake \u2192 water" in plugin.dock.status_label.text()


def test_text_the_bundled_model_cannot_use_fails_in_the_status_line(
    plugin, qgis_iface, tmp_path
) -> None:
    """A prompt in another script: no layer, no file, and the status line names the text and
    what the model knows."""
    import shutil

    copy = shutil.copy(DEMO_RASTER, tmp_path)
    raster = _add_raster(Path(copy), "las vegas")
    _show_on_canvas(qgis_iface, raster)
    plugin.show_dock().layer_combo.setLayer(raster)
    before = _layers()
    task = _run(plugin, "\u623f\u5b50", "", output_dir_widget=tmp_path / "out")
    assert task.outcome is None
    assert _layers().keys() == before.keys()
    status = plugin.dock.status_label.text()
    assert "\u623f\u5b50" in status and "reads English only" in status and "buildings" in status
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.gpkg"))
