"""The model manager against a stand-in of the Hugging Face Hub on 127.0.0.1.

The real ``huggingface_hub`` client talks to :mod:`hub_standin`, which serves a reduced release
(official-tiny, random weights) in the published layout. The CLI runs in a child process with
its own environment (``HF_ENDPOINT`` = the stand-in, ``HF_HOME`` and the models folder in
``tmp_path``, ``HF_HUB_OFFLINE=0``), so nothing leaks into other tests; the in-process tests
patch ``huggingface_hub.constants`` with ``monkeypatch``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchscale")
pytest.importorskip("sentencepiece")
pytest.importorskip("huggingface_hub")

sys.path.insert(0, str(Path(__file__).parent / "model"))
from hub_standin import README, HubStandIn, HubState  # noqa: E402
from official_release import release_state, train_spm, write_release  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = "rrsisd/model.safetensors"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    from backend.model.official.model import build_official_model

    spm = train_spm()
    model = build_official_model("official-tiny", tokenizer_model=spm, seed=7)
    state = release_state(model)
    # a 24 MiB tensor the import ignores (video memory), so the weights span several of the
    # client's 10 MiB download chunks and an interruption keeps some of them
    state["visual_model.memory_attention.layers.9.pad.weight"] = torch.ones(6 * 1024**2)
    return write_release(model, tmp_path_factory.mktemp("published") / "rrsisd", spm, state=state)


@pytest.fixture
def hub(release):
    state = HubState()
    state.add_folder(release, "rrsisd")
    state.files["README.md"] = README.encode()
    with HubStandIn(state) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "HF_TOKEN")
    }
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        RS2SAM_MODELS_DIR=str(tmp_path / "models"),
        NO_PROXY="127.0.0.1,localhost",
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backend", "models", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    return errors[0]


def _weights_requests(state: HubState) -> list[dict]:
    return [r for r in state.log if r["method"] == "GET" and r["path"].endswith(WEIGHTS)]


def _tiny_raster(path: Path) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (3, 96, 96), dtype=np.uint8)
    profile = {
        "driver": "GTiff", "width": 96, "height": 96, "count": 3, "dtype": "uint8",
        "crs": "EPSG:32631", "transform": from_origin(500000, 5700000, 0.5, 0.5),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_get_imports_records_and_segments(tmp_path, hub, release):
    import backend
    from backend.model.checkpoint import read_header
    from backend.model.official.importer import import_official

    env = _env(tmp_path, hub.url)
    done = _cli(env, "get", "rrsisd", "--accept-licence")
    assert done.returncode == 0, done.stderr
    ckpt = tmp_path / "models" / "rs2sam2-rrsisd.safetensors"
    assert f"installed rrsisd: {ckpt}" in done.stdout
    assert "These test weights may be used" in done.stderr  # the licence text was shown
    # the same weights as importing the folder directly
    direct = import_official(release, tmp_path / "direct.safetensors", gsd_m=0.5)
    head = read_header(ckpt)
    assert head.weights_sha256 == direct.weights_sha256
    assert head.config.gsd_m == 0.5
    # recorded, raw download deleted (default), licence accepted once
    records = json.loads((tmp_path / "models" / "models.json").read_text())
    assert records["installed"]["rrsisd"]["checkpoint"] == str(ckpt)
    assert records["installed"]["rrsisd"]["origin"]["revision"].startswith("0123456789")
    assert not (tmp_path / "models" / "downloads" / "ReeF2025--RS2-SAM2" / "rrsisd").exists()
    assert list(records["licences"]) == ["ReeF2025/RS2-SAM2/rrsisd"]
    listed = _cli(env, "list")
    assert "rrsisd     published installed" in listed.stdout
    # it segments a raster
    seg = backend.load_segmenter(ckpt, device="cpu")
    result = backend.segment_raster(
        _tiny_raster(tmp_path / "r.tif"), "the storage tank", segmenter=seg,
        out_path=tmp_path / "out.gpkg",
    )  # fmt: skip
    assert result.out_path is not None and Path(result.out_path).is_file()
    assert result.n_tiles >= 1


def test_interrupted_download_resumes_without_starting_over(tmp_path, hub, release):
    size = (release / "model.safetensors").stat().st_size
    cut = size // 2
    hub.state.drop_after[WEIGHTS] = cut
    env = _env(tmp_path, hub.url)
    line = _one_error_line(_cli(env, "get", "rrsisd", "--accept-licence", "--keep-download"))
    assert "resumes it" in line and "503" in line
    part = tmp_path / "models/downloads/ReeF2025--RS2-SAM2/rrsisd/model.safetensors.part"
    kept = part.stat().st_size  # whole 10 MiB chunks of what arrived before the drop
    assert 0 < kept <= cut
    assert not (tmp_path / "models" / "rs2sam2-rrsisd.safetensors").exists()

    hub.state.heal()
    before = len(hub.state.log)
    done = _cli(env, "get", "rrsisd", "--keep-download")  # licence accepted the first time
    assert done.returncode == 0, done.stderr
    resumed = _weights_requests(HubState(log=hub.state.log[before:]))
    assert [r["range"] for r in resumed] == [f"bytes={kept}-"]
    assert hub.state.served[WEIGHTS] == cut + size - kept  # the rest only: no start over
    final = tmp_path / "models/downloads/ReeF2025--RS2-SAM2/rrsisd/model.safetensors"
    assert final.read_bytes() == (release / "model.safetensors").read_bytes()


def test_corrupted_file_is_refused_and_nothing_imported(tmp_path, hub):
    hub.state.corrupt.add(WEIGHTS)
    line = _one_error_line(_cli(_env(tmp_path, hub.url), "get", "rrsisd", "--accept-licence"))
    assert "model.safetensors: its SHA-256 is" in line and "nothing was imported" in line
    assert not list((tmp_path / "models").glob("*.safetensors"))
    assert not (tmp_path / "models/downloads/ReeF2025--RS2-SAM2/rrsisd/model.safetensors").exists()


def test_unknown_repository_is_one_line(tmp_path, hub):
    hub.state.repo = "someone/else"
    line = _one_error_line(_cli(_env(tmp_path, hub.url), "get", "rrsisd", "--accept-licence"))
    assert line == (
        f"error: ReeF2025/RS2-SAM2 was not found on {hub.url} (or it is private); check the "
        "name and HF_ENDPOINT, and set HF_TOKEN for a private repository"
    )


def test_unknown_name_is_one_line(tmp_path, hub):
    line = _one_error_line(_cli(_env(tmp_path, hub.url), "get", "rrsid"))
    assert "unknown model 'rrsid'; published models: rrsisd, refseg" in line


def test_refused_connection_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}"
    line = _one_error_line(_cli(_env(tmp_path, url), "get", "rrsisd", "--accept-licence"))
    assert line.startswith(f"error: cannot reach {url} (ConnectError")
    assert "HF_ENDPOINT and the proxy variables" in line


def test_unreachable_proxy_is_one_line(tmp_path):
    proxy = f"http://127.0.0.1:{_free_port()}"
    env = _env(tmp_path, "http://hub.example.invalid", HTTPS_PROXY=proxy, HTTP_PROXY=proxy)
    env["NO_PROXY"] = ""
    line = _one_error_line(_cli(env, "get", "rrsisd", "--accept-licence"))
    assert line.startswith(
        f"error: cannot reach http://hub.example.invalid through the proxy {proxy} ("
    )
    assert line.endswith("check HTTPS_PROXY, HTTP_PROXY and NO_PROXY, or the proxy itself")


def test_not_enough_disk_is_refused_before_any_byte(tmp_path, hub):
    env = _env(tmp_path, hub.url, RS2SAM_FREE_BYTES="1000000")
    line = _one_error_line(_cli(env, "get", "rrsisd", "--accept-licence"))
    assert "not enough disk space" in line and "free some space or set RS2SAM_MODELS_DIR" in line
    assert not (tmp_path / "models").exists() and not (tmp_path / "hf_home").exists()
    assert _weights_requests(hub.state) == []


def test_refused_licence_downloads_nothing(tmp_path, hub):
    line = _one_error_line(_cli(_env(tmp_path, hub.url), "get", "rrsisd"))
    assert "must be accepted: run again with --accept-licence" in line
    assert _weights_requests(hub.state) == []
    assert not list((tmp_path / "models").glob("*.safetensors"))


def test_offline_setting_is_one_line(tmp_path, hub):
    env = _env(tmp_path, hub.url, HF_HUB_OFFLINE="1")
    line = _one_error_line(_cli(env, "get", "rrsisd", "--accept-licence"))
    assert line.startswith("error: HF_HUB_OFFLINE is set, so nothing can be downloaded")


def test_import_folder_and_remove(tmp_path, release):
    env = _env(tmp_path, "http://127.0.0.1:9")  # never contacted
    before = {p.name: p.stat().st_mtime_ns for p in release.iterdir()}
    done = _cli(env, "import", str(release), "--fp16")
    assert done.returncode == 0, done.stderr
    ckpt = tmp_path / "models" / "rs2sam2-rrsisd-fp16.safetensors"
    assert ckpt.is_file() and {p.name: p.stat().st_mtime_ns for p in release.iterdir()} == before
    done = _cli(env, "remove", "rrsisd")
    assert done.returncode == 0, done.stderr
    assert not ckpt.exists() and release.is_dir()
    line = _one_error_line(_cli(env, "remove", "rrsisd"))
    assert "no installed model 'rrsisd'" in line


def test_cancel_mid_download_keeps_the_part_and_imports_nothing(tmp_path, hub, monkeypatch):
    from huggingface_hub import constants

    from backend.errors import Cancelled
    from backend.model_store.manager import ModelStore

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for key, value in _env(tmp_path, hub.url).items():
        monkeypatch.setenv(key, value)
    store = ModelStore(tmp_path / "models")
    job = store.prepare_get("rrsisd")
    assert job.problem is None and job.download_bytes == job.plan.nbytes
    store.accept_licence(job)
    seen = []

    def cancel_after_some_bytes() -> bool:
        return bool(seen) and seen[-1].done > 40_000

    with pytest.raises(Cancelled, match="kept for a resume"):
        store.run(job, on_progress=seen.append, is_cancelled=cancel_after_some_bytes)
    assert {s.stage for s in seen} == {"download"}
    assert not list((tmp_path / "models").glob("*.safetensors"))
    assert store.prepare_get("rrsisd").download_bytes < job.plan.nbytes  # resumes from the part


def test_a_file_in_the_hugging_face_cache_is_not_downloaded_again(tmp_path, hub, monkeypatch):
    from huggingface_hub import constants, hf_hub_download

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    cache = tmp_path / "hf_home" / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    hf_hub_download(
        "ReeF2025/RS2-SAM2", WEIGHTS, revision=commit, cache_dir=cache, endpoint=hub.url
    )  # fmt: skip  (e.g. an earlier 'hf download')
    before = len(hub.state.log)
    done = _cli(_env(tmp_path, hub.url), "get", "rrsisd", "--accept-licence")
    assert done.returncode == 0, done.stderr
    assert _weights_requests(HubState(log=hub.state.log[before:])) == []
    assert (tmp_path / "models" / "rs2sam2-rrsisd.safetensors").is_file()
    assert len(list(cache.rglob("model.safetensors"))) == 1  # the cache is left as it was
