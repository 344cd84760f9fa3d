"""The real QGIS desktop under Xvfb: the zip-installed plugin loads and one dock query works."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.qgis, pytest.mark.desktop]

QGIS = shutil.which("qgis")
XVFB = shutil.which("xvfb-run")


def run_desktop(config: dict, profiles: Path, env: dict, timeout: int = 300) -> dict:
    """Start ``qgis`` under ``xvfb-run`` with the e2e script and return its JSON result."""
    config_path = Path(config["result_json"]).with_name("e2e_config.json")
    config_path.write_text(json.dumps(config), encoding="utf-8")
    ini = profiles / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text("[PythonPlugins]\nrs2sam_qgis=true\n", encoding="utf-8")
    command = [
        XVFB,
        "-a",
        "-s",
        "-screen 0 1440x900x24",
        "env",
        f"RS2SAM_E2E_CONFIG={config_path}",
        "timeout",
        str(timeout),
        QGIS,
        "--nologo",
        "--noversioncheck",
        "--profiles-path",
        str(profiles),
        "--code",
        str(Path(__file__).with_name("desktop_e2e.py")),
    ]
    desktop_env = {k: v for k, v in env.items() if k != "QT_QPA_PLATFORM"}  # a real X server
    proc = subprocess.run(
        command,
        env=desktop_env,
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        check=False,
    )
    result_path = Path(config["result_json"])
    assert result_path.exists(), (
        f"QGIS exited {proc.returncode} without a result\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-3000:]}"
    )
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result["returncode"] = proc.returncode
    return result


@pytest.mark.skipif(QGIS is None or XVFB is None, reason="needs the qgis binary and xvfb-run")
def test_desktop_qgis_loads_the_zip_and_runs_a_dock_query(
    installed_profile, sandbox_env, red_square_tif, tmp_path
) -> None:
    config = {
        "raster": str(red_square_tif),
        "queries": [
            "the red square",
            {"text": "anything", "model_config": "test-tiny", "threshold": 0.01},
        ],
        "model_config": "standin:red",
        "extent_mode": "canvas",
        "output_dir": str(tmp_path / "results"),
        "screenshot": str(tmp_path / "desktop.png"),
        "dock_screenshot": str(tmp_path / "dock.png"),
        "result_json": str(tmp_path / "result.json"),
        "window_size": [1280, 800],
        "timeout_s": 120,
    }
    result = run_desktop(config, installed_profile, sandbox_env)
    assert result["errors"] == [], result["errors"]
    assert result["ok"] and result["plugin_loaded"] and result["provider_registered"]
    assert result["dock_open"]
    assert result["heavy_at_start"] == []  # nothing heavy at QGIS start-up
    assert result["backend_module"] == "rs2sam_qgis.libs.backend"  # the vendored copy
    query, tiny = result["queries"]
    assert query["finished"], query
    (added,) = query["added_layers"]
    assert added["name"].startswith("the red square")
    assert added["crs"] == result["raster_crs"] == "EPSG:32633"
    assert added["features"] == 1
    assert Path(added["source"].split("|")[0]).parent == tmp_path / "results"
    # the result layers sit in the layer tree above the raster, the newest on top
    tree = result["layer_tree"]
    tiny_name = result["queries"][1]["added_layers"][0]["name"]
    assert tree == [tiny_name, added["name"], "red_square.tif"]
    assert result["screenshot_saved"] and Path(config["screenshot"]).stat().st_size > 10_000
    # the real model code (test-tiny, random init) runs inside the QGIS desktop as well
    assert tiny["finished"] and tiny["polygons"] and tiny["polygons"] >= 1, tiny
    (tiny_layer,) = tiny["added_layers"]
    assert tiny_layer["crs"] == "EPSG:32633" and "random weights" in tiny_layer["name"]
    # the plugin's own toolbar is visible in this fresh profile (the Raster toolbar is not)
    assert result["toolbar"] == {
        "count": 1,
        "visible": True,
        "has_action": True,
        "action_visible_in_bar": True,
        "raster_toolbar_visible": result["toolbar"]["raster_toolbar_visible"],
    }, result["toolbar"]
    # every text of the dock fits at 1280 x 800, also with the dependency message shown
    assert result["clipped"] == [], result["clipped"]
    assert result["clipped_with_deps_box"] == [], result["clipped_with_deps_box"]
    # stage texts during the run: the model load first (busy bar), then tiles k of n
    keys = [key for key, _text, _max in query["stages"]]
    assert keys[0] == "load" and query["stages"][0][2] == 0, query["stages"]
    assert "tiles" in keys and keys[-1] == "write", keys
    assert any(text.startswith("Segmenting: tile 1 of") for _k, text, _m in query["stages"])
    print("desktop e2e:", json.dumps(result["queries"]))


@pytest.mark.skipif(QGIS is None or XVFB is None, reason="needs the qgis binary and xvfb-run")
def test_desktop_quit_after_a_run_in_an_unsaved_project_asks_nothing(
    installed_profile, sandbox_env, red_square_tif, tmp_path
) -> None:
    """A user runs a query in an unsaved project (no output folder) and quits QGIS: the result
    is a temporary layer, and no dialog appears (the test fails if any modal dialog shows)."""
    modal_log = tmp_path / "modal.txt"
    config = {
        "raster": str(red_square_tif),
        "queries": ["the red square", "the red square"],
        "model_config": "standin:red",
        "extent_mode": "layer",
        "result_json": str(tmp_path / "result.json"),
        "window_size": [1280, 800],
        "quit_check": True,
        "modal_log": str(modal_log),
        "timeout_s": 120,
    }
    # QGIS calls layers under QDir::tempPath() "temporary" and asks about them: the test
    # raster lives in pytest's /tmp folder, so QGIS's temp folder is moved elsewhere
    (tmp_path / "qgis_tmp").mkdir()
    env = {**sandbox_env, "TMPDIR": str(tmp_path / "qgis_tmp")}
    result = run_desktop(config, installed_profile, env, timeout=200)
    assert result["errors"] == [], result["errors"]
    first, second = result["queries"]
    (layer,) = first["added_layers"]
    assert layer["provider"] == "memory", layer
    assert second["added_layers"][0]["name"] == layer["name"] + " (2)"  # unique names
    assert not modal_log.exists(), modal_log.read_text()
    assert result["returncode"] == 0
