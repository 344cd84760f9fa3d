"""Fixtures for the real-QGIS tests: rasters, a started plugin, task waiting, subprocess env.

pytest-qgis has already started one offscreen ``QgsApplication`` (and its stub ``iface``)
before this file is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from qgis_helpers import (
    ORIGIN_X,
    ORIGIN_Y,
    PIXEL,
    ROOT,
    VENV_SITE,
    red_square_image,
    write_geotiff,
)

# the dock preloads its model when it opens (rs2sam_qgis/preload.py); the other tests count
# model loads and read the status line, so it is off unless a test turns it on
os.environ.setdefault("RS2SAM_PRELOAD", "0")


@pytest.fixture
def red_square_tif(tmp_path: Path) -> Path:
    """64 x 64 px, 1 m pixels, EPSG:32633 (UTM 33N), red square of 16 x 16 m."""
    return write_geotiff(
        tmp_path / "red_square.tif", red_square_image(), (ORIGIN_X, ORIGIN_Y), PIXEL, 32633
    )


@pytest.fixture
def clean_project(qgis_iface: object) -> Iterator[object]:
    """An empty project before and after the test."""
    from qgis.core import QgsProject

    QgsProject.instance().clear()
    qgis_iface.messageBar().clear_messages()  # type: ignore[attr-defined]
    yield QgsProject.instance()
    QgsProject.instance().clear()


@pytest.fixture
def plugin(qgis_iface: object, clean_project: object, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """The plugin from the repository checkout, initGui'ed with developer models on."""
    monkeypatch.setenv("RS2SAM_DEV_MODELS", "1")
    from qgis.core import QgsSettings

    QgsSettings().remove("rs2sam")  # each test starts from the default preferences
    import rs2sam_qgis

    instance = rs2sam_qgis.classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()
    QgsSettings().remove("rs2sam")


@pytest.fixture(scope="session")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for QGIS subprocesses: private HOME/XDG dirs, the venv first, no PROJ_LIB."""
    home = tmp_path_factory.mktemp("qgis-home")
    env = {k: v for k, v in os.environ.items() if k not in ("PROJ_LIB", "PROJ_DATA")}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_RUNTIME_DIR=str(home / "runtime"),
        QT_QPA_PLATFORM=env.get("QT_QPA_PLATFORM", "offscreen"),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(VENV_SITE),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("QGIS_CUSTOM_CONFIG_PATH", None)
    env.pop("QGIS_OPTIONS_PATH", None)
    (home / "runtime").mkdir(mode=0o700)
    return env


@pytest.fixture(scope="session")
def built_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make plugin`` into a temp dir (Bandit skipped here; test_build runs it); the zip path."""
    out = tmp_path_factory.mktemp("dist") / "rs2sam_qgis.zip"
    stage = tmp_path_factory.mktemp("stage")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "build_plugin.py"),
            "--out",
            str(out),
            "--stage",
            str(stage),
            "--no-bandit",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="session")
def installed_profile(built_plugin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh QGIS profiles folder with the zip installed in ``default/python/plugins``."""
    import zipfile

    profiles = tmp_path_factory.mktemp("profiles")
    plugins = profiles / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(built_plugin) as archive:
        archive.extractall(plugins)
    return profiles
