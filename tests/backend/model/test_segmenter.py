"""load_segmenter / Segmenter: contract §2 behaviour, devices, defaults and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import backend
from backend.errors import CheckpointError, ConfigError, DeviceError, InputError
from backend.model import segmenter as segmenter_module
from backend.model.checkpoint import save_checkpoint
from backend.model.segmenter import Segmenter, load_segmenter, resolve_device
from backend.types import SegmenterLike


@pytest.fixture(scope="module")
def seg(tiny):
    return Segmenter(tiny)


def test_attributes_and_protocol():
    s = backend.load_segmenter(config="test-tiny", device="cpu")
    assert isinstance(s, SegmenterLike)
    assert (s.name, s.checkpoint_sha256, s.image_size, s.gsd_m, s.device) == (
        "test-tiny",
        "",
        128,
        None,
        "cpu",
    )
    assert s.config.name == "test-tiny" and isinstance(s.model, torch.nn.Module)
    assert not s.model.training


def test_predict_shape_range_and_determinism(seg, images):
    image = images[0][:50, :70]  # any size >= 32, not square
    prob = seg.predict(image, "the red square")
    assert prob.shape == (50, 70) and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    assert np.array_equal(prob, seg.predict(image, "the red square"))
    assert not np.array_equal(prob, seg.predict(image, "three small boats"))


def test_predict_batch_equals_one_by_one(seg, images):
    batch = seg.predict_batch(images, "the red square")
    assert batch.shape == (2, 72, 96) and batch.dtype == np.float32
    for i in range(2):
        np.testing.assert_allclose(batch[i], seg.predict(images[i], "the red square"), atol=1e-6)


def test_read_only_input_is_copied_not_aliased(seg, images):
    """A read-only array (a memory-mapped or cached tile) gives the same values, no warning."""
    ro = images.copy()
    ro.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # torch's "non-writable array" warning
        out = seg.predict_batch(ro, "the red square")
    np.testing.assert_array_equal(out, seg.predict_batch(images.copy(), "the red square"))
    assert not ro.flags.writeable


def test_predict_batch_chunks_give_the_same_values(tiny, images):
    whole = Segmenter(tiny, max_batch=8).predict_batch(images, "noise")
    chunked = Segmenter(tiny, max_batch=1).predict_batch(images, "noise")
    np.testing.assert_allclose(whole, chunked, atol=1e-6)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((64, 64), np.uint8), r"single-band"),
        (np.zeros((64, 64, 4), np.uint8), r"alpha band"),
        (np.zeros((64, 64, 2), np.uint8), r"\(H, W, 3\) RGB"),
        (np.zeros((64, 64, 3), np.float32), r"uint8.*float32"),
        (np.zeros((64, 64, 3), np.uint16), r"uint8.*uint16"),
        (np.zeros((31, 64, 3), np.uint8), r"at least 32x32 px, got 31x64"),
        (np.zeros((64, 8, 3), np.uint8), r"at least 32x32 px, got 64x8"),
        ([[0, 0, 0]], r"numpy array"),
    ],
)
def test_bad_images(seg, image, match):
    with pytest.raises(InputError, match=match):
        seg.predict(image, "roofs")


@pytest.mark.parametrize(("text", "match"), [("", "empty"), ("  \n\t", "whitespace"), (3, "str")])
def test_bad_text(seg, images, text, match):
    with pytest.raises(InputError, match=match):
        seg.predict(images[0], text)


def test_bad_batch(seg, images):
    with pytest.raises(InputError, match=r"\(N, H, W, 3\)"):
        seg.predict_batch(images[0], "roofs")


def test_long_text_is_truncated_with_warning(seg, images, caplog):
    with caplog.at_level("WARNING"):
        prob = seg.predict(images[0], "the " + "very " * 40 + "red square")
    assert prob.shape == (72, 96)
    assert "truncated" in caplog.text


def test_unknown_config():
    names = "'nope'.*base, large, lgce-nano, lgce-paper, lgce-tiny, nano, official-large"
    with pytest.raises(ConfigError, match=names):
        load_segmenter(config="nope")


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu0", ""])
def test_unknown_device(device):
    with pytest.raises(DeviceError, match="unknown device"):
        load_segmenter(config="test-tiny", device=device)


def test_devices_resolve_on_this_machine():
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu") or resolve_device("auto").type == "mps"
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    mps = torch.backends.mps
    for cuda, has_mps, want in [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        monkeypatch.setattr(mps, "is_available", lambda has_mps=has_mps: has_mps)
        assert resolve_device("auto") == torch.device(want)
    with pytest.raises(DeviceError, match="'mps' is not available"):
        resolve_device("mps")


def test_threads_setting():
    before = torch.get_num_threads()
    try:
        load_segmenter(config="test-tiny", device="cpu", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="threads"):
        load_segmenter(config="test-tiny", threads=0)


def test_no_default_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(segmenter_module, "DEFAULT_WEIGHTS", tmp_path / "default.safetensors")
    with pytest.raises(CheckpointError, match=r"no bundled default weights yet.*checkpoint="):
        load_segmenter()


def test_default_weights_and_checkpoint_loading(monkeypatch, tmp_path, tiny, images):
    path = tmp_path / "default.safetensors"
    sha = save_checkpoint(tiny, path)
    monkeypatch.setattr(segmenter_module, "DEFAULT_WEIGHTS", path)
    default = load_segmenter(device="cpu")
    assert default.checkpoint_sha256 == sha and default.name == "test-tiny"
    explicit = load_segmenter(path, config="test-tiny", device="cpu")
    np.testing.assert_array_equal(
        default.predict(images[0], "roofs"), explicit.predict(images[0], "roofs")
    )
    np.testing.assert_array_equal(
        default.predict(images[0], "roofs"), Segmenter(tiny).predict(images[0], "roofs")
    )
    with pytest.raises(ConfigError, match="does not match the checkpoint's 'test-tiny'"):
        load_segmenter(path, config="nano")


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_segmenter(tmp_path / "missing.safetensors")
