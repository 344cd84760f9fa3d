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
    return json.loads(result_path.read_text(encoding="utf-8"))


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
    print("desktop e2e:", json.dumps(result["queries"]))
