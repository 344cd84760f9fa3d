"""Installed but not loaded yet: every path says "Restart QGIS to load them", none invites a
second install (dock box, message bar on opening and on Run, Processing)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from qgis_helpers import messages

pytestmark = pytest.mark.qgis

RESTART = "Restart QGIS to load them"


def _install_after_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sam2 cannot be imported in this session, but the installer has since put it in the
    private folder's ``.pending`` twin (the folder QGIS loads at its next start). Called after
    the plugin was created: its start-up activation must not see it."""
    import rs2sam_qgis.deps as deps

    root = tmp_path / "deps"
    pending = root / (sys.implementation.cache_tag + ".pending")
    (pending / "sam2").mkdir(parents=True)
    (pending / "sam2" / "__init__.py").write_text("")
    monkeypatch.setenv("RS2SAM_DEPS_DIR", str(root))
    real = deps._installed
    monkeypatch.setattr(deps, "_installed", lambda name: name != "sam2" and real(name))
    return pending


@pytest.fixture
def installed_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return _install_after_start(tmp_path, monkeypatch)


def test_report_knows_the_difference(installed_not_loaded, tmp_path, monkeypatch) -> None:
    from rs2sam_qgis.deps import check_dependencies

    report = check_dependencies()
    assert not report.ok and report.restart_needed
    assert report.restart_folder == str(installed_not_loaded)
    assert report.summary() == "Dependencies installed. Restart QGIS to load them."
    assert RESTART in report.message() and "pip install" not in report.message()
    # nothing installed anywhere: the usual "missing" story
    monkeypatch.setenv("RS2SAM_DEPS_DIR", str(tmp_path / "elsewhere"))
    fresh = check_dependencies()
    assert not fresh.restart_needed and fresh.summary() == "Python packages missing: sam2."


def test_dock_and_message_bar_say_restart(
    plugin, qgis_iface, red_square_tif, tmp_path, monkeypatch
) -> None:
    from qgis.core import QgsProject, QgsRasterLayer

    _install_after_start(tmp_path, monkeypatch)
    dock = plugin.show_dock()
    assert RESTART in dock.deps_label.text() and not dock.deps_box.isHidden()
    assert dock.install_button.isHidden()  # no second install offered
    (opened,) = messages(qgis_iface, "Warning")  # said when the dock opens, not only on Run
    assert RESTART in opened and "Install dependencies" not in opened
    layer = QgsRasterLayer(str(red_square_tif), "red")
    QgsProject.instance().addMapLayer(layer)
    dock.query_combo.setEditText("red")
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("layer"))
    dock.dev_model_combo.setEditText("standin:red")
    dock.run_button.click()
    (critical,) = messages(qgis_iface, "Critical")
    assert RESTART in critical and "Install dependencies" not in critical
    assert RESTART in dock.status_label.text()
    assert RESTART in dock.deps_label.text() and dock.install_button.isHidden()
    assert plugin.controller.task is None


def test_missing_and_not_installed_is_said_when_the_dock_opens(
    plugin, qgis_iface, monkeypatch, tmp_path
) -> None:
    import rs2sam_qgis.deps as deps

    monkeypatch.setenv("RS2SAM_DEPS_DIR", str(tmp_path / "none"))
    real = deps._installed
    monkeypatch.setattr(deps, "_installed", lambda name: name != "sam2" and real(name))
    dock = plugin.show_dock()
    (opened,) = messages(qgis_iface, "Warning")
    assert "sam2" in opened and "Install dependencies" in opened
    assert not dock.install_button.isHidden()


def test_processing_says_restart(qgis_processing, red_square_tif, tmp_path, monkeypatch):
    import processing
    from qgis.core import QgsProcessingException

    import rs2sam_qgis

    instance = rs2sam_qgis.classFactory(None)
    instance.initProcessing()
    _install_after_start(tmp_path, monkeypatch)
    try:
        with pytest.raises(QgsProcessingException, match=RESTART):
            processing.run(
                "rs2sam:segmentbytext",
                {
                    "INPUT": str(red_square_tif),
                    "TEXT": "red",
                    "MODEL_CONFIG": "standin:red",
                    "OUTPUT": str(tmp_path / "out.gpkg"),
                },
            )
        assert not (tmp_path / "out.gpkg").exists()
    finally:
        instance.unload()
