"""The dock's Refine map tool in real QGIS: clicks on the canvas correct the answer in place."""

from __future__ import annotations

import pytest
from qgis_helpers import ORIGIN_X, ORIGIN_Y, RED_BOX, messages, wait_for

pytestmark = pytest.mark.qgis


def _geometries(layer) -> list[str]:
    return sorted(f.geometry().asWkt(6) for f in layer.getFeatures())


def _click(canvas, x: float, y: float, button: str = "left", shift: bool = False) -> None:
    """A real mouse click on the canvas viewport at map point (x, y) (canvas CRS)."""
    from qgis.core import QgsPointXY
    from qgis.PyQt.QtCore import QPoint, Qt
    from qgis.PyQt.QtTest import QTest

    pixel = canvas.getCoordinateTransform().transform(QgsPointXY(x, y))
    where = QPoint(round(pixel.x()), round(pixel.y()))
    which = Qt.MouseButton.LeftButton if button == "left" else Qt.MouseButton.RightButton
    mods = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    QTest.mouseClick(canvas.viewport(), which, mods, where)


def test_refine_tool_clicks_update_the_answer_layer_with_undo(
    plugin, qgis_iface, red_square_tif, tmp_path
) -> None:
    from qgis.core import QgsGeometry, QgsPointXY, QgsProject, QgsRasterLayer

    raster = QgsRasterLayer(str(red_square_tif), "red")
    QgsProject.instance().addMapLayer(raster)
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(raster.crs())
    canvas.resize(600, 600)
    extent = raster.extent()
    extent.scale(1.1)
    canvas.setExtent(extent)
    canvas.refresh()
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(raster)
    dock.query_combo.setEditText("the red square")
    dock.dev_model_combo.setEditText("standin:click-red")
    dock.output_dir_widget.setFilePath(str(tmp_path / "out"))
    dock.run_button.click()
    assert wait_for(lambda: plugin.controller.task is None, 120)
    layer = QgsProject.instance().mapLayer(plugin.controller.last_layer_id)
    assert layer is not None and layer.featureCount() == 1
    text_answer = _geometries(layer)
    part = dock.refine_part
    part.refine_button.setChecked(True)
    assert canvas.mapTool() is part.tool

    # left click far from the red square: the answer gains a 13 x 13 m square there
    px, py = ORIGIN_X + 50.5, ORIGIN_Y - 50.5
    _click(canvas, px, py)
    session = part.session
    assert wait_for(lambda: not session.busy, 120)
    assert session.steps == 1 and len(session.markers) == 1
    assert layer.featureCount() == 2
    assert any(f.geometry().contains(QgsGeometry.fromPointXY(QgsPointXY(px, py)))
               for f in layer.getFeatures())
    recorded = {f["clicks"] for f in layer.getFeatures()}
    assert len(recorded) == 1 and recorded.pop().endswith(",+")
    assert layer.customProperty("rs2sam/clicks").endswith(",+")
    assert {f["prompt"] for f in layer.getFeatures()} == {"the red square"}
    assert {f["model"] for f in layer.getFeatures()} == {"standin-click-red"}
    one_click = _geometries(layer)

    # right click in the red square's middle and Shift+click elsewhere (queued): two negatives
    cx, cy = (RED_BOX[0] + RED_BOX[2]) / 2, (RED_BOX[1] + RED_BOX[3]) / 2
    _click(canvas, cx, cy, "right")
    _click(canvas, px, py, shift=True)
    assert wait_for(lambda: not session.busy, 120)
    assert session.steps == 3 and len(session.markers) == 3
    assert not any(f.geometry().contains(QgsGeometry.fromPointXY(QgsPointXY(cx, cy)))
                   for f in layer.getFeatures())
    assert layer.featureCount() >= 1
    clicks = layer.customProperty("rs2sam/clicks").split(";")
    assert [c[-1] for c in clicks] == ["+", "-", "-"]

    # Undo click twice: the exact one-click geometry; Clear clicks: the exact text answer
    part.undo_button.click()
    part.undo_button.click()
    assert _geometries(layer) == one_click and session.steps == 1
    assert len(session.markers) == 1
    part.clear_button.click()
    assert _geometries(layer) == text_answer and session.steps == 0
    assert not session.markers

    # a click outside the raster: a clear message, nothing changes, no marker stays
    _click(canvas, ORIGIN_X - 3.0, ORIGIN_Y + 3.0)
    assert wait_for(lambda: not session.busy, 120)
    assert _geometries(layer) == text_answer and not session.markers
    assert any("outside the raster" in m for m in messages(qgis_iface, "Warning")), \
        messages(qgis_iface, "Warning")
    part.refine_button.setChecked(False)
    assert canvas.mapTool() is not part.tool


def test_processing_points_reproduce_a_refined_answer(
    qgis_processing, qgis_iface, red_square_tif, tmp_path
) -> None:
    import processing
    from qgis.core import (
        QgsApplication,
        QgsGeometry,
        QgsPointXY,
        QgsProcessingException,
        QgsProcessingFeedback,
        QgsVectorLayer,
    )

    import rs2sam_qgis

    instance = rs2sam_qgis.classFactory(None)
    instance.initProcessing()
    assert QgsApplication.processingRegistry().providerById("rs2sam") is not None
    try:
        px, py = ORIGIN_X + 50.5, ORIGIN_Y - 50.5
        clicks = f"{px},{py},+"
        out = tmp_path / "out.gpkg"
        result = processing.run("rs2sam:segmentbytext", {
            "INPUT": str(red_square_tif), "TEXT": "the red square", "DEVICE": "cpu",
            "MODEL_CONFIG": "standin:click-red", "POINTS": clicks, "OUTPUT": str(out)},
            feedback=QgsProcessingFeedback())
        assert result["POLYGONS"] == 2  # the red square + the positive click's square
        layer = QgsVectorLayer(str(out), "out", "ogr")
        assert any(f.geometry().contains(QgsGeometry.fromPointXY(QgsPointXY(px, py)))
                   for f in layer.getFeatures())
        assert {f["clicks"] for f in layer.getFeatures()} == {f"{px:.10g},{py:.10g},+"}
        del layer  # a layer kept alive by the traceback below would outlive QGIS (segfault)
        with pytest.raises(QgsProcessingException, match="must be X,Y"):
            processing.run("rs2sam:segmentbytext", {
                "INPUT": str(red_square_tif), "TEXT": "the red square", "DEVICE": "cpu",
                "MODEL_CONFIG": "standin:click-red", "POINTS": "1,2,?",
                "OUTPUT": str(tmp_path / "bad.gpkg")}, feedback=QgsProcessingFeedback())
        assert not (tmp_path / "bad.gpkg").exists()
    finally:
        instance.unload()
