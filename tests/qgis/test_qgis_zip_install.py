"""`make plugin`: zip layout, Bandit, and the zip installed into a fresh profile loads and runs."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from qgis_helpers import ROOT

pytestmark = pytest.mark.qgis


def test_zip_has_one_top_folder_with_metadata_license_icon_and_vendored_backend(
    built_plugin,
) -> None:
    with zipfile.ZipFile(built_plugin) as archive:
        names = archive.namelist()
        metadata = archive.read("rs2sam_qgis/metadata.txt").decode("utf-8")
        vendored_init = archive.read("rs2sam_qgis/libs/backend/__init__.py").decode("utf-8")
        modes = {info.external_attr >> 16 for info in archive.infolist()}
    assert {name.split("/")[0] for name in names} == {"rs2sam_qgis"}
    for required in (
        "__init__.py",
        "metadata.txt",
        "LICENSE",
        "icons/segment_by_text.svg",
        "plugin.py",
        "libs/__init__.py",
        "libs/backend/pipeline/__init__.py",
        "libs/backend/text/lexicon.json",
        "libs/backend/standins.py",
        "libs/training/adapt/engine.py",  # the adaptation engine ("Teach", rs2sam:adaptmodel)
        "processing_provider/algorithm.py",
    ):
        assert f"rs2sam_qgis/{required}" in names, required
    assert "icon=icons/segment_by_text.svg" in metadata
    assert "hasProcessingProvider=yes" in metadata
    assert not any(n.endswith((".pyc", ".pyo")) or "__pycache__" in n for n in names)
    assert modes == {0o644}
    # absolute backend module names were rewritten to the vendored package
    assert '"backend.' not in vendored_init and "rs2sam_qgis.libs.backend." in vendored_init
    weights = ROOT / "backend" / "weights"
    for path in weights.glob("*") if weights.is_dir() else []:
        assert f"rs2sam_qgis/libs/backend/weights/{path.name}" in names


def test_build_script_runs_bandit_clean(tmp_path) -> None:
    """The same command as `make plugin` (Bandit on by default) succeeds: no findings."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "build_plugin.py"),
            "--out",
            str(tmp_path / "p.zip"),
            "--stage",
            str(tmp_path / "stage"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "bandit: no findings" in proc.stdout


def test_build_script_rewrites_absolute_backend_imports(tmp_path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import build_plugin
    finally:
        sys.path.remove(str(ROOT / "tools"))
    source = tmp_path / "mod.py"
    source.write_text(
        "from backend.errors import InputError\n"
        "import backend.geo.raster as raster\n"
        "from . import sibling\n"
        'NAME = "backend.pipeline"\n'
        'TEXT = "backend is great"\n',
        encoding="utf-8",
    )
    changes = build_plugin.rewrite_backend_imports(source, {"backend.pipeline", "backend.geo"})
    text = source.read_text(encoding="utf-8")
    assert "from rs2sam_qgis.libs.backend.errors import InputError" in text
    assert "import rs2sam_qgis.libs.backend.geo.raster as raster" in text
    assert 'NAME = "rs2sam_qgis.libs.backend.pipeline"' in text
    assert 'TEXT = "backend is great"' in text and "from . import sibling" in text
    assert len(changes) == 3
    bad = tmp_path / "bad.py"
    bad.write_text("import backend.pipeline\n", encoding="utf-8")
    with pytest.raises(build_plugin.BuildError, match="cannot be vendored"):
        build_plugin.rewrite_backend_imports(bad, set())


INSTALLED_SCRIPT = r"""
import json, os, sys, time
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from pytest_qgis.mock_qgis_classes import MockMessageBar
from pytest_qgis.qgis_interface import QgisInterface  # before QgsApplication: slot signatures
app = QgsApplication([], True)
app.initQgis()
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtWidgets import QMainWindow
import qgis.utils
plugins_dir, raster, out_dir = sys.argv[1:4]
sys.path.insert(0, plugins_dir)
qgis.utils.plugin_paths = [plugins_dir]  # as QGIS does for <profile>/python/plugins
qgis.utils.updateAvailablePlugins()
main = QMainWindow()
iface = QgisInterface(QgsMapCanvas(main), MockMessageBar(), main)
qgis.utils.iface = iface
result = {"available": "rs2sam_qgis" in qgis.utils.available_plugins}
result["loaded"] = qgis.utils.loadPlugin("rs2sam_qgis")
result["started"] = qgis.utils.startPlugin("rs2sam_qgis")
import rs2sam_qgis
from rs2sam_qgis._backend import get_backend
result["plugin_file"] = rs2sam_qgis.__file__
result["backend"] = get_backend().__name__
result["provider"] = QgsApplication.processingRegistry().providerById("rs2sam") is not None
layer = QgsRasterLayer(raster, "red")
QgsProject.instance().addMapLayer(layer)
canvas = iface.mapCanvas()
canvas.setDestinationCrs(layer.crs())
canvas.setExtent(layer.extent())


def run_query(text):
    plugin = qgis.utils.plugins["rs2sam_qgis"]
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(layer)
    dock.settings.dev_models = True
    dock.query_combo.setEditText(text)
    dock.dev_model_combo.setEditText("standin:red")
    dock.output_dir_widget.setFilePath(out_dir)
    dock.run_button.click()
    deadline = time.monotonic() + 60
    while plugin.controller.task is not None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    return dock.status_label.text()


result["status"] = run_query("the red square")
result["reloaded"] = qgis.utils.reloadPlugin("rs2sam_qgis")  # what Plugin Reloader does
result["status_after_reload"] = run_query("red again")
added = [l for l in QgsProject.instance().mapLayers().values() if l is not layer]
result["added"] = sorted((l.name(), l.featureCount(), l.crs().authid()) for l in added)
result["unloaded"] = qgis.utils.unloadPlugin("rs2sam_qgis")
result["provider_after_unload"] = (
    QgsApplication.processingRegistry().providerById("rs2sam") is not None
)
QgsProject.instance().clear()
print("RESULT " + json.dumps(result))
"""


def test_zip_installed_in_a_fresh_profile_loads_and_runs(
    installed_profile, sandbox_env, red_square_tif, tmp_path
) -> None:
    """loadPlugin/startPlugin from the profile's python/plugins, without the repo on sys.path."""
    plugins = installed_profile / "profiles" / "default" / "python" / "plugins"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            INSTALLED_SCRIPT,
            str(plugins),
            str(red_square_tif),
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,  # not the repository: only the installed copy is importable
        env={**sandbox_env, "RS2SAM_DEV_MODELS": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["available"] and result["loaded"] and result["started"] and result["provider"]
    assert Path(result["plugin_file"]).is_relative_to(plugins)
    assert result["backend"] == "rs2sam_qgis.libs.backend"
    assert result["reloaded"] is not False
    assert result["added"] == [
        ["red again [stand-in red]", 1, "EPSG:32633"],
        ["the red square [stand-in red]", 1, "EPSG:32633"],
    ], result
    assert result["unloaded"] and not result["provider_after_unload"]
