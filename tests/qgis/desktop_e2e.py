"""Run inside the real QGIS desktop (``qgis --code desktop_e2e.py``): one or more dock queries.

Configured by the JSON file named in ``RS2SAM_E2E_CONFIG``::

    {"raster": "/path.tif", "queries": ["the red square", {"text": "x", "model_config":
     "test-tiny", "threshold": 0.01}], "model_config": "standin:red",
     "checkpoint": "", "extent_mode": "canvas", "threshold": 0.5, "window_size": [1280, 800],
     "screenshot": "/out/main.png", "dock_screenshot": "/out/dock.png",
     "result_json": "/out/result.json", "timeout_s": 240,
     "quit_check": false, "modal_log": "/out/modal.txt"}

It writes ``result_json`` with what happened (plugin state at start-up, the plugin's toolbar,
heavy modules imported before the first run, per-query timings, stage texts and worst 50 ms-timer
delay, the layer tree, the result layers, dock texts that do not fit their widgets), saves the
screenshots and exits QGIS. Normally it clears the project first; with ``quit_check`` it leaves
the results in the (unsaved, but not otherwise modified) project and quits as a user would:
any modal dialog that appears is written to ``modal_log`` and QGIS is ended with status 3.
Everything is wrapped so that a failure is reported in the JSON, not a hang.
"""

import json
import os
import sys
import time
import traceback

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QCoreApplication, QPoint, QTimer
from qgis.PyQt.QtWidgets import (
    QAbstractButton,
    QApplication,
    QLabel,
    QMessageBox,
    QToolBar,
    QWidget,
)
from qgis.utils import iface, plugins

CONFIG = json.loads(open(os.environ["RS2SAM_E2E_CONFIG"], encoding="utf-8").read())
RESULT = {"ok": False, "errors": [], "queries": []}
HEAVY = ("torch", "sam2", "open_clip", "rasterio")


def wait(condition, timeout):
    """Spin the event loop until condition() or timeout; returns condition()."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QCoreApplication.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def settle(seconds=1.0):
    """Let the canvas finish rendering (and paint events run)."""
    canvas = iface.mapCanvas()
    wait(lambda: not canvas.isDrawing(), 20)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def toolbar_state(plugin):
    """The plugin's own toolbar: present, visible, holding the action (fresh profile)."""
    bars = iface.mainWindow().findChildren(QToolBar, "Rs2SamToolbar")
    bar = bars[0] if bars else None
    button = bar.widgetForAction(plugin.action) if bar else None
    return {
        "count": len(bars),
        "visible": bool(bar and bar.isVisible()),
        "has_action": bool(bar and plugin.action in bar.actions()),
        "action_visible_in_bar": bool(button and button.isVisible()),
        "raster_toolbar_visible": iface.rasterToolBar().isVisible(),
    }


def clipped_texts(dock):
    """Visible labels/buttons of the dock whose text does not fit (size hint vs geometry), or
    that stick out of the scroll area's viewport."""
    viewport = dock.widget().viewport() if hasattr(dock.widget(), "viewport") else dock
    out = []
    for widget in dock.findChildren(QWidget):
        if not isinstance(widget, QLabel | QAbstractButton) or not widget.isVisibleTo(dock):
            continue
        text = widget.text()
        if not text:
            continue
        if isinstance(widget, QLabel) and widget.wordWrap():
            fits = widget.heightForWidth(widget.width()) <= widget.height()
        else:
            fits = widget.sizeHint().width() <= widget.width()
        right = widget.mapTo(viewport, QPoint(widget.width(), 0)).x()
        inside = right <= viewport.width() + 1
        if not (fits and inside):
            out.append(
                {
                    "name": widget.objectName() or type(widget).__name__,
                    "text": text[:80],
                    "size": [widget.width(), widget.height()],
                    "hint": [widget.sizeHint().width(), widget.sizeHint().height()],
                    "right_edge": right,
                    "viewport_width": viewport.width(),
                }
            )
    return out


def watch_modal_dialogs():
    """Record any modal dialog (title and text) and end QGIS: a quit must not ask anything."""

    def check():
        widget = QApplication.activeModalWidget()
        if widget is None:
            return
        text = widget.text() if isinstance(widget, QMessageBox) else ""
        with open(CONFIG["modal_log"], "a", encoding="utf-8") as handle:
            handle.write(f"{type(widget).__name__}: {widget.windowTitle()}: {text}\n")
        os._exit(3)

    timer = QTimer(QCoreApplication.instance())
    timer.setInterval(100)
    timer.timeout.connect(check)
    timer.start()
    return timer


def extra_screenshots(plugin):
    """Screenshots for the user guide: attribute table, installer, Processing dialog."""
    if CONFIG.get("attributes_screenshot"):
        result = next(
            (lyr for lyr in QgsProject.instance().mapLayers().values()
             if lyr.customProperty("rs2sam/result", False)),
            None,
        )
        if result is not None:
            table = iface.showAttributeTable(result)
            table.resize(1000, 320)
            settle(1.0)
            RESULT["attributes_screenshot_saved"] = table.grab().save(
                CONFIG["attributes_screenshot"]
            )
            table.close()
    if CONFIG.get("installer_screenshot"):
        # this machine has every package: the picture shows the dialog as a user without
        # torch/sam2/open_clip sees it (same dialog, report of missing packages given)
        from rs2sam_qgis.deps import DependencyReport, check_dependencies
        from rs2sam_qgis.installer_dialog import InstallerDialog

        real = check_dependencies()
        missing = ["torch", "sam2", "open_clip", "torchvision", "hydra", "iopath"]
        report = DependencyReport(
            missing=missing,
            numpy_version=real.numpy_version,
            numpy_pin=real.numpy_pin,
            problems=["missing Python packages: " + ", ".join(missing)],
        )
        dialog = InstallerDialog(report, parent=iface.mainWindow())
        dialog.show()
        settle(1.0)
        for _ in range(240):  # the index check and the size measurement (about 30 s here)
            if not dialog.checking:
                break
            settle(0.5)
        settle(1.0)
        RESULT["installer_screenshot_saved"] = dialog.grab().save(CONFIG["installer_screenshot"])
        dialog.close()
    if CONFIG.get("processing_screenshot"):
        import processing

        dialog = processing.createAlgorithmDialog(
            "rs2sam:segmentbytext",
            {"INPUT": CONFIG["raster"], "TEXT": CONFIG["queries"][0]
             if isinstance(CONFIG["queries"][0], str) else CONFIG["queries"][0]["text"]},
        )
        dialog.resize(900, 640)
        dialog.show()
        settle(1.0)
        RESULT["processing_screenshot_saved"] = dialog.grab().save(
            CONFIG["processing_screenshot"]
        )
        dialog.close()


def run_query(plugin, dock, query):
    """Click Run for one query; measure wall time and the worst gap of a 50 ms timer.

    ``query`` is the text, or a dict with ``text`` and optional ``model_config``/``threshold``.
    """
    if isinstance(query, str):
        query = {"text": query}
    text = query["text"]
    if "model_config" in query:
        dock.dev_model_combo.setEditText(query["model_config"])
    if "threshold" in query:
        dock.threshold_spin.setValue(float(query["threshold"]))
    gaps = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(tick)
    layers_before = set(QgsProject.instance().mapLayers())
    stages = []
    real_set_stage = type(dock).set_stage

    def record(key, text_):  # the controller connects the task to dock.set_stage at Run
        real_set_stage(dock, key, text_)
        stages.append([key, text_, dock.progress_bar.maximum()])

    dock.set_stage = record
    dock.query_combo.setEditText(text)
    start = time.perf_counter()
    timer.start()
    last[0] = time.perf_counter()
    dock.run_button.click()
    task = plugin.controller.task
    done = wait(lambda: plugin.controller.task is None, CONFIG.get("timeout_s", 240))
    elapsed = time.perf_counter() - start
    timer.stop()
    del dock.set_stage
    added = [
        QgsProject.instance().mapLayer(i)
        for i in set(QgsProject.instance().mapLayers()) - layers_before
    ]
    outcome = getattr(task, "outcome", None)
    return {
        "text": text,
        "model": dock.dev_model_combo.currentText() if query.get("model_config") else "",
        "finished": done,
        "wall_s": round(elapsed, 3),
        "run_s": round(outcome.seconds, 3) if outcome else None,
        "load_s": round(outcome.load_seconds, 3) if outcome else None,
        "polygons": outcome.polygons if outcome else None,
        "worst_timer_gap_ms": round(1000 * max(gaps), 1) if gaps else None,
        "timer_ticks": len(gaps),
        "status": dock.status_label.text(),
        "stages": stages,
        "added_layers": [
            {
                "name": lyr.name(),
                "crs": lyr.crs().authid(),
                "features": lyr.featureCount(),
                "source": lyr.source(),
                "provider": lyr.providerType(),
            }
            for lyr in added
        ],
    }


def main():
    try:
        RESULT["plugin_loaded"] = "rs2sam_qgis" in plugins
        RESULT["heavy_at_start"] = sorted(m for m in HEAVY if m in sys.modules)
        registry = QgsApplication.processingRegistry()
        RESULT["provider_registered"] = registry.providerById("rs2sam") is not None
        plugin = plugins["rs2sam_qgis"]
        settle(0.5)
        RESULT["toolbar"] = toolbar_state(plugin)
        RESULT["backend_module"] = (
            __import__("rs2sam_qgis._backend", fromlist=["get_backend"]).get_backend().__name__
        )
        if CONFIG.get("window_size"):
            iface.mainWindow().showNormal()
            iface.mainWindow().resize(*CONFIG["window_size"])
        layer = QgsRasterLayer(CONFIG["raster"], os.path.basename(CONFIG["raster"]))
        if not layer.isValid():
            raise RuntimeError(f"raster {CONFIG['raster']} is not valid")
        QgsProject.instance().addMapLayer(layer)
        RESULT["raster_crs"] = layer.crs().authid()
        iface.setActiveLayer(layer)
        canvas = iface.mapCanvas()
        canvas.setDestinationCrs(layer.crs())
        canvas.setExtent(layer.extent())
        canvas.refresh()
        settle(1.0)
        iface.mainWindow().findChild(type(plugin.action), plugin.action.objectName()).trigger()
        dock = plugin.dock
        RESULT["dock_open"] = dock is not None and dock.isVisible()
        dock.extent_combo.setCurrentIndex(
            dock.extent_combo.findData(CONFIG.get("extent_mode", "canvas"))
        )
        dock.threshold_spin.setValue(float(CONFIG.get("threshold", 0.5)))
        dock.checkpoint_widget.setFilePath(CONFIG.get("checkpoint", ""))
        if CONFIG.get("model_config"):
            dock.settings.dev_models = True
            dock.apply_settings(dock.current_settings())
            dock.dev_model_combo.setEditText(CONFIG["model_config"])
        if CONFIG.get("output_dir"):
            dock.output_dir_widget.setFilePath(CONFIG["output_dir"])
        for text in CONFIG["queries"]:
            RESULT["queries"].append(run_query(plugin, dock, text))
        settle(2.0)
        RESULT["clipped"] = clipped_texts(dock)
        # the longest dependency message there is, shown in the dock: still readable
        from rs2sam_qgis.deps import REQUIRED

        saved_status = dock.status_label.text()
        names = ", ".join(dict.fromkeys(["torch", "sam2", *REQUIRED]))
        dock.set_dependency_problem(
            f"Python packages missing: {names}. "
            "Install them into the plugin's own folder with the button below."
        )
        settle(0.5)
        RESULT["clipped_with_deps_box"] = clipped_texts(dock)
        if CONFIG.get("deps_screenshot"):
            dock.grab().save(CONFIG["deps_screenshot"])
        dock.set_dependency_problem("")
        dock.set_status(saved_status)
        root = QgsProject.instance().layerTreeRoot()
        RESULT["layer_tree"] = [node.name() for node in root.children()]
        if CONFIG.get("screenshot"):
            RESULT["screenshot_saved"] = iface.mainWindow().grab().save(CONFIG["screenshot"])
        if CONFIG.get("dock_screenshot"):
            RESULT["dock_screenshot_saved"] = dock.grab().save(CONFIG["dock_screenshot"])
        extra_screenshots(plugin)
        RESULT["ok"] = True
    except Exception:
        RESULT["errors"].append(traceback.format_exc())
    finally:
        with open(CONFIG["result_json"], "w", encoding="utf-8") as handle:
            json.dump(RESULT, handle, indent=2)
        if CONFIG.get("quit_check"):
            # the raster this script added is the user's own change: QGIS's normal "save the
            # project?" question is not what is checked here, so only that flag is reset
            QgsProject.instance().setDirty(False)
            RESULT["_watcher"] = watch_modal_dialogs()
        else:
            QgsProject.instance().clear()
        QTimer.singleShot(200, iface.actionExit().trigger)


QTimer.singleShot(500, main)
