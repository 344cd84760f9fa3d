"""classFactory, initGui, unload in real QGIS: nothing left behind, reload-safe, light start."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from qgis_helpers import ROOT

pytestmark = pytest.mark.qgis


def _flush_deletes() -> None:
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    QCoreApplication.processEvents()


def _bridge_handlers() -> list[logging.Handler]:
    from rs2sam_qgis.log import BRIDGED_LOGGERS, QgsLogHandler

    return [
        h
        for name in BRIDGED_LOGGERS
        for h in logging.getLogger(name).handlers
        if isinstance(h, QgsLogHandler)
    ]


def test_init_gui_then_unload_leaves_nothing_behind_twice(qgis_iface, clean_project) -> None:
    from qgis.core import QgsApplication
    from qgis.PyQt.QtWidgets import QAction, QDockWidget, QToolBar

    import rs2sam_qgis
    from rs2sam_qgis.plugin import ACTION_NAME, INSTALL_ACTION_NAME, TOOLBAR_NAME

    canvas = qgis_iface.mapCanvas()
    main = qgis_iface.mainWindow()
    registry = QgsApplication.processingRegistry()
    baseline = (
        canvas.receivers(canvas.extentsChanged),
        canvas.receivers(canvas.destinationCrsChanged),
    )
    qgis_iface.addPluginToRasterMenu.reset_mock()
    qgis_iface.removePluginRasterMenu.reset_mock()
    qgis_iface.addRasterToolBarIcon.reset_mock()
    qgis_iface.removeRasterToolBarIcon.reset_mock()

    for cycle in range(2):  # unload + load again, as Plugin Reloader does
        plugin = rs2sam_qgis.classFactory(qgis_iface)
        plugin.initGui()
        assert registry.providerById("rs2sam") is not None
        assert registry.algorithmById("rs2sam:segmentbytext") is not None
        assert len(main.findChildren(QAction, ACTION_NAME)) == 1
        assert len(main.findChildren(QAction, INSTALL_ACTION_NAME)) == 1
        (toolbar,) = main.findChildren(QToolBar, TOOLBAR_NAME)
        assert plugin.action in toolbar.actions()
        assert plugin.action.text() == "Segment by text"
        assert not plugin.action.icon().isNull()
        assert main.findChildren(QDockWidget, "Rs2SamSegmentDock") == []  # created on first use
        plugin.action.trigger()
        docks = main.findChildren(QDockWidget, "Rs2SamSegmentDock")
        assert len(docks) == 1 and docks[0] is plugin.dock
        assert not plugin.dock.isHidden()
        assert canvas.receivers(canvas.extentsChanged) > baseline[0]
        assert len({id(h) for h in _bridge_handlers()}) == 1

        plugin.unload()
        _flush_deletes()
        assert main.findChildren(QAction, ACTION_NAME) == [], f"cycle {cycle}: action left"
        assert main.findChildren(QAction, INSTALL_ACTION_NAME) == []
        assert main.findChildren(QAction, "Rs2SamModelsAction") == []
        assert main.findChildren(QToolBar, TOOLBAR_NAME) == [], f"cycle {cycle}: toolbar"
        assert main.findChildren(QDockWidget, "Rs2SamSegmentDock") == [], f"cycle {cycle}: dock"
        assert registry.providerById("rs2sam") is None
        assert registry.algorithmById("rs2sam:segmentbytext") is None
        assert (
            canvas.receivers(canvas.extentsChanged),
            canvas.receivers(canvas.destinationCrsChanged),
        ) == baseline
        assert _bridge_handlers() == []

    # every menu/toolbar addition was undone with the same (menu, action)
    added = [c.args for c in qgis_iface.addPluginToRasterMenu.call_args_list]
    removed = [c.args for c in qgis_iface.removePluginRasterMenu.call_args_list]
    # per cycle: "Segment by text", "Install dependencies…" and "Models…"
    assert len(added) == 6 and sorted(added, key=repr) == sorted(removed, key=repr)
    assert qgis_iface.addRasterToolBarIcon.call_args_list == []  # own toolbar instead


def test_unload_while_a_task_runs_cancels_it(plugin, red_square_tif) -> None:
    """Unloading mid-run cancels the task and nothing is added afterwards."""
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsTask
    from qgis_helpers import wait_for

    layer = QgsRasterLayer(str(red_square_tif), "red")
    QgsProject.instance().addMapLayer(layer)
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(layer)
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("layer"))
    dock.query_combo.setEditText("red things")
    dock.dev_model_combo.setEditText("standin:sleep:2:32")  # several 2 s tiles
    controller = plugin.controller
    controller.deps_report = None
    dock.run_button.click()
    task = controller.task
    assert task is not None, dock.status_label.text()
    assert wait_for(lambda: task.status() == QgsTask.Running, 10)
    out_path = Path(task.request.out_path)
    plugin.unload()  # mid-run
    assert wait_for(lambda: task not in QgsApplication.taskManager().tasks(), 30)
    assert task.was_cancelled
    assert [lyr.name() for lyr in QgsProject.instance().mapLayers().values()] == ["red"]
    assert not out_path.exists()
    plugin.initGui()  # so the fixture's unload has something to undo


STARTUP_SCRIPT = r"""
import json, sys
from qgis.core import QgsApplication
from pytest_qgis.mock_qgis_classes import MockMessageBar
from pytest_qgis.qgis_interface import QgisInterface  # before QgsApplication: slot signatures
app = QgsApplication([], True)
app.initQgis()
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtWidgets import QMainWindow
main = QMainWindow()
iface = QgisInterface(QgsMapCanvas(main), MockMessageBar(), main)
import rs2sam_qgis
plugin = rs2sam_qgis.classFactory(iface)
plugin.initProcessing()
plugin.initGui()
plugin.show_dock()
heavy = sorted(m for m in ("torch", "sam2", "open_clip", "rasterio", "hydra", "timm")
               if m in sys.modules)
plugin.unload()
print(json.dumps({"heavy": heavy}))
app.exitQgis()
"""


def test_qgis_start_up_imports_nothing_heavy(sandbox_env) -> None:
    """Loading the plugin, initGui and opening the dock import no torch/sam2/open_clip/rasterio."""
    proc = subprocess.run(
        [sys.executable, "-c", STARTUP_SCRIPT],
        cwd=ROOT,
        env=sandbox_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []


ISOLATION_SCRIPT = r"""
import importlib, json, sys
from rs2sam_qgis import native_libs
first = native_libs.isolate_native_libraries()
import shapely, pyproj, rasterio
marked = [p for p in native_libs.PACKAGES if getattr(sys.modules[p], native_libs.MARK, False)]
reloaded = importlib.reload(native_libs).isolate_native_libraries()
print(json.dumps({"first": first, "marked": marked, "reloaded": reloaded}))
"""


def test_native_library_isolation_survives_a_plugin_reload(sandbox_env) -> None:
    """A fresh interpreter: isolation marks the packages; after a module reload (Plugin
    Reloader) they are not reported as 'imported before isolation'."""
    proc = subprocess.run(
        [sys.executable, "-c", ISOLATION_SCRIPT],
        cwd=ROOT,
        env=sandbox_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {
        "first": [],
        "marked": ["shapely", "pyproj", "rasterio", "pyogrio"],
        "reloaded": [],
    }
