"""Screenshot of a refined answer in real QGIS (run by tools/refine_screenshot.py, not a test).

The dock answers "the buildings" on the SpaceNet Las Vegas tile with the checkpoint named in
``RS2SAM_REFINE_CKPT`` (empty: the bundled weights); then the Refine tool gets real mouse
clicks on the canvas: a positive click on the reference footprint the answer covers least and
a negative click in the answer's largest part outside every footprint. The canvas and the dock
are saved side by side to ``RS2SAM_REFINE_SHOT``; a JSON next to it holds the IoU against the
footprints before and after.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from qgis_helpers import DEMO_RASTER, wait_for
from test_qgis_refine import _click

pytestmark = pytest.mark.qgis

FOOTPRINTS = DEMO_RASTER.parent / "SpaceNet_AOI_2_Las_Vegas-056155973080_01_P001-WV03.gpkg"


def _union(layer):
    from qgis.core import QgsGeometry

    return QgsGeometry.unaryUnion([f.geometry() for f in layer.getFeatures()])


def _iou(a, b) -> float:
    union = a.combine(b).area()
    return a.intersection(b).area() / union if union else 0.0


def _render(canvas, layers, extent, session, path: Path, size: int = 700) -> None:
    """The map at ``size`` px (crisp, whatever the canvas widget's state) with the markers."""
    from qgis.core import QgsMapRendererCustomPainterJob, QgsMapSettings
    from qgis.PyQt.QtCore import QPointF, QSize
    from qgis.PyQt.QtGui import QColor, QImage, QPainter, QPen

    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(canvas.mapSettings().destinationCrs())
    settings.setOutputSize(QSize(size, size))
    settings.setExtent(extent)
    image = QImage(QSize(size, size), QImage.Format.Format_ARGB32)
    image.fill(QColor(255, 255, 255))
    painter = QPainter(image)
    job = QgsMapRendererCustomPainterJob(settings, painter)
    job.start()
    job.waitForFinished()
    to_px = settings.mapToPixel()
    for x, y, positive in session.clicks:
        p = to_px.transform(x, y)
        painter.setPen(QPen(QColor(40, 220, 60) if positive else QColor(240, 40, 40), 4))
        c, r = QPointF(p.x(), p.y()), 10
        if positive:
            painter.drawLine(c + QPointF(-r, 0), c + QPointF(r, 0))
            painter.drawLine(c + QPointF(0, -r), c + QPointF(0, r))
        else:
            painter.drawLine(c + QPointF(-r, -r), c + QPointF(r, r))
            painter.drawLine(c + QPointF(-r, r), c + QPointF(r, -r))
    painter.end()
    image.save(str(path))


def test_refine_screenshot(plugin, qgis_iface, tmp_path) -> None:
    out = os.environ.get("RS2SAM_REFINE_SHOT")
    if not out:
        pytest.skip("set RS2SAM_REFINE_SHOT to write the screenshot")
    from PIL import Image
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer
    from qgis.PyQt.QtGui import QColor
    from qgis.PyQt.QtTest import QTest

    raster = QgsRasterLayer(str(DEMO_RASTER), "SpaceNet Las Vegas")
    import shutil

    copy = tmp_path / FOOTPRINTS.name  # QGIS may touch a GeoPackage it opens: never the repo's
    shutil.copyfile(FOOTPRINTS, copy)
    refs = QgsVectorLayer(str(copy), "reference footprints", "ogr")
    assert raster.isValid() and refs.isValid()
    QgsProject.instance().addMapLayer(raster)
    canvas = qgis_iface.mapCanvas()
    canvas.resize(700, 700)
    canvas.show()
    canvas.setDestinationCrs(raster.crs())
    canvas.setLayers([raster])
    canvas.setExtent(raster.extent())
    canvas.refresh()
    dock = plugin.show_dock()
    dock.resize(380, 700)
    dock.layer_combo.setLayer(raster)
    dock.query_combo.setEditText("the buildings")
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("layer"))
    dock.checkpoint_widget.setFilePath(os.environ.get("RS2SAM_REFINE_CKPT", ""))
    dock.output_dir_widget.setFilePath(str(tmp_path / "out"))
    dock.run_button.click()
    assert wait_for(lambda: plugin.controller.task is None, 600)
    layer = QgsProject.instance().mapLayer(plugin.controller.last_layer_id)
    truth = _union(refs)
    before = _iou(_union(layer), truth)
    # positive: the footprint the answer covers least; negative: the largest false part
    answer = _union(layer)
    worst = min(refs.getFeatures(), key=lambda f: f.geometry().intersection(answer).area()
                / f.geometry().area())
    pos = worst.geometry().pointOnSurface().asPoint()
    wrong = answer.difference(truth.buffer(1.0, 4))
    parts = wrong.asGeometryCollection() if not wrong.isEmpty() else []
    neg = max(parts, key=lambda g: g.area()).pointOnSurface().asPoint() if parts else None
    dock.refine_part.refine_button.setChecked(True)
    _click(canvas, pos.x(), pos.y())
    assert wait_for(lambda: not dock.refine_part.session.busy, 600)
    if neg is not None:
        _click(canvas, neg.x(), neg.y(), "right")
        assert wait_for(lambda: not dock.refine_part.session.busy, 600)
    after = _iou(_union(layer), truth)
    refs.renderer().symbol().setColor(QColor(0, 0, 0, 0))  # reference: outline only
    refs.renderer().symbol().symbolLayer(0).setStrokeColor(QColor(255, 255, 0))
    refs.renderer().symbol().symbolLayer(0).setStrokeWidth(0.6)
    shots = tmp_path / "canvas.png", tmp_path / "dock.png"
    _render(canvas, [refs, layer, raster], raster.extent(), dock.refine_part.session,
            shots[0])
    dock.scroll.ensureWidgetVisible(dock.refine_part.label)  # the Refine row in view
    QTest.qWait(200)
    dock.grab().save(str(shots[1]))
    left, right = Image.open(shots[0]), Image.open(shots[1])
    sheet = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    sheet.paste(left, (0, 0))
    sheet.paste(right, (left.width, 0))
    sheet.save(out)
    Path(out).with_suffix(".json").write_text(json.dumps({
        "iou_text": round(before, 4), "iou_refined": round(after, 4),
        "clicks": layer.customProperty("rs2sam/clicks"), "features": layer.featureCount(),
    }))
