"""The dock preloads its model when it opens; a query asked meanwhile waits for that load.

Real QGIS (offscreen) with the bundled weights on the demo GeoTIFF.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
from qgis_helpers import DEMO_RASTER, wait_for

pytestmark = pytest.mark.qgis


def _raster(tmp_path: Path):
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(shutil.copy(DEMO_RASTER, tmp_path)), "las vegas")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture
def shown_window(qgis_iface):
    """The main window on screen (offscreen), so that a shown dock is really visible."""
    window = qgis_iface.mainWindow()
    was_visible = window.isVisible()
    window.show()
    yield window
    if not was_visible:
        window.hide()


def _query(plugin, raster, tmp_path: Path, text: str = "buildings"):
    dock = plugin.dock
    dock.layer_combo.setLayer(raster)
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("layer"))
    dock.query_combo.setEditText(text)
    dock.dev_model_combo.setEditText("")  # the bundled weights
    dock.threshold_spin.setValue(0.01)
    dock.output_dir_widget.setFilePath(str(tmp_path / "out"))
    dock.run_button.click()
    return plugin.controller.task


def test_dock_open_preloads_the_model_and_the_first_query_finds_it(
    plugin, qgis_iface, shown_window, tmp_path, monkeypatch
) -> None:
    from rs2sam_qgis import preload
    from rs2sam_qgis.models import CACHE, ModelChoice

    monkeypatch.setenv("RS2SAM_PRELOAD", "1")
    CACHE.clear()
    raster = _raster(tmp_path)
    states: list[str] = []
    dock = plugin.show_dock()  # opening the dock starts the preload
    dock.preloader.state_changed.connect(states.append)
    assert dock.preloader.state == preload.LOADING
    assert "Loading the model" in dock.status_label.text()
    assert wait_for(lambda: dock.preloader.state == preload.READY, 300), states
    assert dock.status_label.text() == "Model ready."
    assert CACHE.contains(ModelChoice(), dock.current_settings().device)
    assert "torch" in sys.modules and "rasterio" in sys.modules  # imported before any query
    task = _query(plugin, raster, tmp_path)
    assert wait_for(lambda: plugin.controller.task is None, 300)
    assert task.outcome is not None, dock.status_label.text()
    assert task.outcome.polygons >= 1
    assert task.outcome.load_seconds == 0.0  # the preloaded model: nothing loaded again
    assert len(CACHE) == 1
    assert not dock.preloader.start()  # shown again later: the model is there already


def test_a_query_asked_while_the_model_loads_waits_and_loads_nothing(
    plugin, qgis_iface, shown_window, tmp_path, monkeypatch
) -> None:
    from rs2sam_qgis import preload
    from rs2sam_qgis.models import CACHE

    monkeypatch.setenv("RS2SAM_PRELOAD", "1")
    CACHE.clear()
    real = preload.preload
    calls: list[float] = []

    def slow_preload(*args):
        time.sleep(1.0)  # the user is faster than the load
        calls.append(real(*args))
        return calls[-1]

    monkeypatch.setattr(preload, "preload", slow_preload)
    raster = _raster(tmp_path)
    dock = plugin.show_dock()
    assert dock.preloader.state == preload.LOADING
    task = _query(plugin, raster, tmp_path)  # asked during the load
    assert task is not None and not dock.preloader.future.done()
    assert wait_for(lambda: plugin.controller.task is None, 300)
    assert task.outcome is not None, dock.status_label.text()
    assert calls and calls[0] > 0  # the preload did the one load ...
    assert task.outcome.load_seconds == 0.0  # ... and the query waited for it
    assert len(CACHE) == 1
