"""Run inside the real QGIS desktop (``qgis --code desktop_models_e2e.py``): get a model, use it.

Configured by the JSON file named in ``RS2SAM_E2E_CONFIG``::

    {"raster": "/path.tif", "text": "the storage tank", "screenshot": "/out/dialog.png",
     "screen_screenshot": "/out/screen.png", "result_json": "/out/result.json",
     "window_size": [1280, 800], "timeout_s": 240}

Steps, as a user clicks them: open the dock, click "Models…", select the published ``rrsisd``
row, click Get, accept the licence in its dialog, watch the progress (the dialog is saved as a
screenshot while the download runs), wait for "Installed", then run one dock query, which must
use the new checkpoint. The hub is the stand-in whose address is in ``HF_ENDPOINT``. Writes
``result_json`` and quits QGIS; a failure is reported in the JSON, not a hang.
"""

import json
import os
import time
import traceback

from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QCoreApplication, QTimer
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface, plugins

CONFIG = json.loads(open(os.environ["RS2SAM_E2E_CONFIG"], encoding="utf-8").read())
RESULT = {"ok": False, "errors": [], "progress_texts": []}


def wait(condition, timeout):
    """Spin the event loop until condition() or timeout; returns condition()."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QCoreApplication.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def accept_licence_when_shown():
    """Click Accept in the licence dialog when it is the active modal window."""
    modal = QApplication.activeModalWidget()
    if modal is not None and modal.objectName() == "Rs2SamLicenceDialog":
        RESULT["licence_title"] = modal.windowTitle()
        modal.accept()
        return
    QTimer.singleShot(200, accept_licence_when_shown)


def main():
    try:
        iface.mainWindow().resize(*CONFIG.get("window_size", [1280, 800]))
        plugin = plugins["rs2sam_qgis"]
        layer = QgsRasterLayer(CONFIG["raster"], "raster")
        QgsProject.instance().addMapLayer(layer)
        iface.setActiveLayer(layer)
        iface.mapCanvas().setExtent(layer.extent())
        dock = plugin.show_dock()
        dock.model_part.box.setCollapsed(False)
        wait(lambda: False, 0.5)
        dock.model_part.models_button.click()
        dialog = plugin.models_dialog
        RESULT["dialog_open"] = bool(dialog is not None and dialog.isVisible())
        dialog.select("rrsisd")
        QTimer.singleShot(200, accept_licence_when_shown)
        dialog.get_button.click()
        timeout = CONFIG.get("timeout_s", 240)
        wait(lambda: "Downloading" in dialog.status.text() and dialog.progress.value() >= 20,
             timeout)  # fmt: skip
        RESULT["progress_texts"].append(dialog.status.text())
        wait(lambda: False, 0.3)
        RESULT["screenshot_saved"] = dialog.grab().save(CONFIG["screenshot"])
        screen = QApplication.primaryScreen().grabWindow(0)
        RESULT["screen_saved"] = screen.save(CONFIG["screen_screenshot"])
        RESULT["progress_value_at_screenshot"] = dialog.progress.value()
        wait(lambda: dialog.task is None, timeout)
        RESULT["final_status"] = dialog.status.text()
        RESULT["dock_checkpoint"] = dock.checkpoint_widget.filePath()
        RESULT["dock_model_info"] = dock.model_part.model_info.text()
        dialog.close()
        layers_before = set(QgsProject.instance().mapLayers())
        dock.query_combo.setEditText(CONFIG["text"])
        dock.run_button.click()
        task = plugin.controller.task
        RESULT["query_checkpoint"] = task.request.model.checkpoint if task else None
        RESULT["query_finished"] = wait(lambda: plugin.controller.task is None, timeout)
        outcome = getattr(task, "outcome", None)
        RESULT["query_model"] = outcome.model_name if outcome else None
        RESULT["query_status"] = dock.status_label.text()
        RESULT["added_layers"] = [
            QgsProject.instance().mapLayer(i).name()
            for i in set(QgsProject.instance().mapLayers()) - layers_before
        ]
        RESULT["ok"] = True
    except Exception:
        RESULT["errors"].append(traceback.format_exc())
    finally:
        with open(CONFIG["result_json"], "w", encoding="utf-8") as f:
            json.dump(RESULT, f, indent=1)
        QgsProject.instance().clear()
        QgsProject.instance().setDirty(False)
        QTimer.singleShot(100, QApplication.instance().quit)


QTimer.singleShot(500, main)
