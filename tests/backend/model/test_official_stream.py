"""import-official streams: one tensor at a time, save_checkpoint's hash, no partial file."""

from __future__ import annotations

import json
import struct
import weakref
from collections import namedtuple

import pytest
import torch

pytest.importorskip("torchscale")
pytest.importorskip("sentencepiece")

from official_release import train_spm, write_release  # noqa: E402

from backend.errors import Cancelled, CheckpointError, OutputError  # noqa: E402
from backend.model.checkpoint import read_checkpoint, read_header  # noqa: E402
from backend.model.official import release as release_mod  # noqa: E402
from backend.model.official.importer import import_official  # noqa: E402
from backend.model.official.model import build_official_model  # noqa: E402
from backend.model.official.stream import SafetensorsFile  # noqa: E402
from backend.model.state_io import weights_sha256  # noqa: E402


@pytest.fixture(scope="module")
def spm_bytes() -> bytes:
    return train_spm()


@pytest.fixture(scope="module")
def source(spm_bytes):
    return build_official_model("official-tiny", tokenizer_model=spm_bytes, seed=5)


@pytest.fixture(scope="module")
def release(tmp_path_factory, source, spm_bytes):
    return write_release(source, tmp_path_factory.mktemp("rel") / "rrsisd", spm_bytes)


@pytest.mark.parametrize("fp16", [False, True])
def test_streamed_file_hash_is_that_of_its_tensors(tmp_path, release, source, fp16):
    out = tmp_path / "m.safetensors"
    result = import_official(release, out, fp16=fp16)
    state, config, metadata, sha = read_checkpoint(out, verify=True)
    assert sha == result.weights_sha256 == read_header(out).weights_sha256
    assert weights_sha256(state) == sha
    ours = source.state_dict()
    for key, tensor in state.items():
        want = ours[key].to(tensor.dtype) if tensor.is_floating_point() else ours[key]
        assert torch.equal(tensor, want), key
    assert {t.dtype for t in state.values() if t.is_floating_point()} == {
        torch.float16 if fp16 else torch.float32
    }
    assert metadata["import"]["dtype"] == ("float16" if fp16 else "float32")


def test_at_most_one_release_tensor_is_alive_at_a_time(tmp_path, release, monkeypatch):
    alive: list[weakref.ref] = []
    most = [0]
    original = release_mod.Release.read

    def spying_read(self, key):
        most[0] = max(most[0], sum(r() is not None for r in alive))
        tensor = original(self, key)
        alive.append(weakref.ref(tensor))
        return tensor

    monkeypatch.setattr(release_mod.Release, "read", spying_read)
    result = import_official(release, tmp_path / "m.safetensors")
    assert len(alive) == result.mapped
    assert most[0] == 0  # every earlier tensor was freed (refcount) before the next was read


def test_progress_reaches_the_file_size(tmp_path, release):
    seen: list[tuple[int, int]] = []
    out = tmp_path / "m.safetensors"
    import_official(release, out, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (out.stat().st_size, out.stat().st_size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_cancel_leaves_nothing(tmp_path, release):
    calls = [0]

    def cancel_after_ten() -> bool:
        calls[0] += 1
        return calls[0] > 10

    with pytest.raises(Cancelled, match="cancelled"):
        import_official(release, tmp_path / "m.safetensors", is_cancelled=cancel_after_ten)
    assert list(tmp_path.iterdir()) == []


def test_full_disk_is_refused_before_writing(tmp_path, release, monkeypatch):
    from backend.model.official import stream

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(stream.shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(OutputError, match=r"GiB free but the checkpoint needs"):
        import_official(release, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_offsets_outside_the_file_are_refused(tmp_path):
    body = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 400]}}
    raw = json.dumps(body).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
    with pytest.raises(CheckpointError, match="corrupt.*offsets of 'w'"):
        SafetensorsFile(path)


def test_size_that_disagrees_with_the_shape_is_refused(tmp_path):
    body = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}
    raw = json.dumps(body).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
    with pytest.raises(CheckpointError, match="size of 'w'"):
        SafetensorsFile(path)
