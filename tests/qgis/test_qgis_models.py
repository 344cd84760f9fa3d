"""The model manager dialog in real QGIS (offscreen), against the hub stand-in on 127.0.0.1."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from qgis_helpers import wait_for

pytestmark = pytest.mark.qgis
pytest.importorskip("torchscale")
pytest.importorskip("sentencepiece")

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "backend"), str(TESTS / "backend" / "model")]
from hub_standin import README, HubStandIn, HubState  # noqa: E402
from official_release import train_spm, write_release  # noqa: E402


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    import torch
    from official_release import release_state

    from backend.model.official.model import build_official_model

    spm = train_spm()
    model = build_official_model("official-tiny", tokenizer_model=spm, seed=7)
    state = release_state(model)
    state["visual_model.memory_attention.layers.9.pad.weight"] = torch.ones(6 * 1024**2)
    return write_release(model, tmp_path_factory.mktemp("published") / "rrsisd", spm, state=state)


@pytest.fixture
def hub(release, tmp_path, monkeypatch):
    from huggingface_hub import constants

    state = HubState()
    state.add_folder(release, "rrsisd")
    state.files["README.md"] = README.encode()
    with HubStandIn(state) as server:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "HF_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
        monkeypatch.setenv("RS2SAM_MODELS_DIR", str(tmp_path / "models"))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield server


def _open(plugin):
    dialog = plugin.show_models()
    dialog.ask_licence = lambda label, text: "These test weights" in text
    dialog.select("rrsisd")
    assert dialog.get_button.isEnabled()
    return dialog


def test_get_from_the_dialog_makes_it_the_docks_model(plugin, hub, tmp_path):
    from rs2sam_qgis.settings import load_settings

    dock = plugin.show_dock()
    dialog = _open(plugin)
    dialog.get_selected()
    assert wait_for(lambda: dialog.status.text().startswith("Installed"), 240), dialog.status.text()
    ckpt = tmp_path / "models" / "rs2sam2-rrsisd.safetensors"
    assert ckpt.is_file()
    assert dock.checkpoint_widget.filePath() == str(ckpt)
    assert load_settings().checkpoint == str(ckpt)
    row = next(r for r in dialog.rows if r.name == "rrsisd")
    assert row.installed and row.path == str(ckpt)
    assert dialog.use_button.isEnabled() and not dialog.get_button.isEnabled()
    assert dialog.task is None and not dialog.cancel_button.isEnabled()


def test_cancel_mid_download_imports_nothing(plugin, hub, tmp_path):
    hub.state.bytes_per_s = 6_000_000  # the weights take about 4 s
    dialog = _open(plugin)
    dialog.get_selected()
    assert wait_for(lambda: dialog.task is not None and "Downloading" in dialog.status.text(), 60)
    assert wait_for(lambda: dialog.progress.value() >= 30, 60), dialog.status.text()
    dialog.cancel()
    assert wait_for(lambda: dialog.task is None, 60)
    assert dialog.status.text().startswith("Cancelled; nothing was imported")
    assert not list((tmp_path / "models").glob("*.safetensors"))
    row = next(r for r in dialog.rows if r.name == "rrsisd")
    assert not row.installed and dialog.get_button.isEnabled()
    # the next Get resumes the kept part with a Range request and finishes
    hub.state.bytes_per_s = 0
    before = len(hub.state.log)
    dialog.select("rrsisd")
    dialog.get_selected()
    assert wait_for(lambda: dialog.status.text().startswith("Installed"), 240)
    weights = [r for r in hub.state.log[before:] if r["path"].endswith("rrsisd/model.safetensors")]
    ranges = [r["range"] for r in weights if r["method"] == "GET"]
    assert len(ranges) == 1 and ranges[0].startswith("bytes=") and ranges[0] != "bytes=0-"


def test_declined_licence_downloads_nothing(plugin, hub, tmp_path, qgis_iface):
    dialog = plugin.show_models()
    dialog.ask_licence = lambda label, text: False
    dialog.select("rrsisd")
    dialog.get_selected()
    assert wait_for(lambda: dialog.status.text().startswith("Failed"), 60)
    assert "was not accepted; nothing was downloaded" in dialog.status.text()
    assert not [r for r in hub.state.log if r["path"].endswith("model.safetensors")]
    assert not (tmp_path / "models" / "downloads").exists()


def test_unreachable_hub_is_a_message_not_a_freeze(plugin, hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    dialog = plugin.show_models()
    dialog.select("rrsisd")
    dialog.get_selected()
    assert wait_for(lambda: dialog.task is None, 60)
    assert dialog.status.text().startswith("Failed: cannot reach http://127.0.0.1:9")


def test_the_published_model_remedy_opens_the_dialog(plugin, hub):
    from rs2sam_qgis import remedies

    (remedy,) = [r for r in remedies.registered() if r.key == remedies.PUBLISHED_MODEL]
    assert remedy.label == "Get the published RS2-SAM 2 model…"
    dialog = remedy.callback(remedies.RemedyContext(prompt="the river"))
    assert dialog is plugin.models_dialog and dialog.isVisible()
