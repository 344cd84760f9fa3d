"""The real QGIS desktop under Xvfb: the Models dialog gets the stand-in model, the dock uses it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.qgis, pytest.mark.desktop]
pytest.importorskip("torchscale")
pytest.importorskip("sentencepiece")

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "backend"), str(TESTS / "backend" / "model")]
from hub_standin import README, HubStandIn, HubState  # noqa: E402
from official_release import release_state, train_spm, write_release  # noqa: E402

QGIS = shutil.which("qgis")
XVFB = shutil.which("xvfb-run")


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    import torch

    from backend.model.official.model import build_official_model

    spm = train_spm()
    model = build_official_model("official-tiny", tokenizer_model=spm, seed=7)
    state = release_state(model)
    state["visual_model.memory_attention.layers.9.pad.weight"] = torch.ones(6 * 1024**2)
    return write_release(model, tmp_path_factory.mktemp("published") / "rrsisd", spm, state=state)


@pytest.mark.skipif(QGIS is None or XVFB is None, reason="needs the qgis binary and xvfb-run")
def test_desktop_models_dialog_gets_the_model_and_the_dock_uses_it(
    installed_profile, sandbox_env, red_square_tif, release, tmp_path
) -> None:
    state = HubState(bytes_per_s=2_500_000)  # slow enough to see the progress
    state.add_folder(release, "rrsisd")
    state.files["README.md"] = README.encode()
    config = {
        "raster": str(red_square_tif),
        "text": "the red square",
        "screenshot": str(tmp_path / "models_dialog.png"),
        "screen_screenshot": str(tmp_path / "screen.png"),
        "result_json": str(tmp_path / "result.json"),
        "window_size": [1280, 800],
        "timeout_s": 240,
    }
    config_path = tmp_path / "e2e_config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    ini = installed_profile / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text("[PythonPlugins]\nrs2sam_qgis=true\n", encoding="utf-8")
    with HubStandIn(state) as hub:
        env = {k: v for k, v in sandbox_env.items() if k != "QT_QPA_PLATFORM"}
        env.update(
            HF_ENDPOINT=hub.url,
            HF_HUB_OFFLINE="0",
            HF_HOME=str(tmp_path / "hf_home"),
            RS2SAM_MODELS_DIR=str(tmp_path / "models"),
            NO_PROXY="127.0.0.1,localhost",
            RS2SAM_E2E_CONFIG=str(config_path),
        )
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(key, None)
        command = [XVFB, "-a", "-s", "-screen 0 1440x900x24", "timeout", "300", QGIS,
                   "--nologo", "--noversioncheck", "--profiles-path", str(installed_profile),
                   "--code", str(Path(__file__).with_name("desktop_models_e2e.py"))]  # fmt: skip
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    (tmp_path / "qgis.log").write_text(proc.stdout + "\n" + proc.stderr, encoding="utf-8")
    result_path = Path(config["result_json"])
    assert result_path.exists(), f"{proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(result_path.read_text(encoding="utf-8"))
    assert result["errors"] == [] and result["ok"], result
    assert result["dialog_open"] and result["licence_title"].startswith("Licence of ReeF2025")
    assert result["progress_texts"][0].startswith("Downloading"), result["progress_texts"]
    assert " of " in result["progress_texts"][0] and "/s" in result["progress_texts"][0]
    assert 20 <= result["progress_value_at_screenshot"] < 100
    assert result["screenshot_saved"] and Path(config["screenshot"]).stat().st_size > 5_000
    ckpt = str(tmp_path / "models" / "rs2sam2-rrsisd.safetensors")
    assert result["final_status"].startswith(f"Installed rrsisd: {ckpt}"), result["final_status"]
    assert result["dock_checkpoint"] == ckpt == result["query_checkpoint"]
    assert result["query_finished"] and result["query_model"] == "official-tiny", result
    print("models desktop e2e:", json.dumps(result))
