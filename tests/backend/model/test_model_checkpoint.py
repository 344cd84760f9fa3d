"""backend.model.checkpoint: self-describing safetensors, safe loading, official-weight init."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from open_clip_ref import open_clip_model
from safetensors import safe_open
from safetensors.torch import save_file

from backend.errors import CheckpointError
from backend.model.checkpoint import (
    load_checkpoint,
    load_open_clip_weights,
    load_sam2_weights,
    read_checkpoint,
    save_checkpoint,
    weights_sha256,
)
from backend.model.configs import get_model_config
from backend.model.rs2sam import _build_sam2, build_model


def _predict(model, images):
    with torch.inference_mode():
        return model(model.prepare_inputs(images, ["the red square", "noise"])).logits


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    sha = save_checkpoint(tiny, path, metadata={"data": "synthetic", "metrics": {"mIoU": 1.5}})
    return path, sha


def test_save_load_gives_bit_identical_predictions(tiny, saved, images):
    path, sha = saved
    ckpt = load_checkpoint(path)
    assert ckpt.weights_sha256 == sha and len(sha) == 64
    assert ckpt.config == tiny.config and ckpt.metadata["metrics"] == {"mIoU": 1.5}
    assert torch.equal(_predict(ckpt.model, images), _predict(tiny, images))
    # freezing policy re-applied
    assert {n for n, p in ckpt.model.named_parameters() if p.requires_grad} == {
        n for n, p in tiny.named_parameters() if p.requires_grad
    }


def test_header_is_self_describing(tiny, saved):
    path, sha = saved
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    assert header["format"] == "rs2sam2"
    assert json.loads(header["model_config"])["name"] == "test-tiny"
    assert json.loads(header["metadata"])["data"] == "synthetic"
    assert header["weights_sha256"] == sha == weights_sha256(tiny.state_dict())


def test_design_b_roundtrip(tiny_b, tmp_path, images):
    path = tmp_path / "b.safetensors"
    save_checkpoint(tiny_b, path)
    assert torch.equal(_predict(load_checkpoint(path).model, images), _predict(tiny_b, images))


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("how", ["truncated", "garbage", "flipped"])
def test_corrupt_file(saved, tmp_path, how):
    data = bytearray(saved[0].read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "garbage":
        data = bytearray(b"\x07" * 100)
    else:  # one weight byte changed: caught by the stored sha256
        data[-5] ^= 0xFF
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)


def _rewrite(saved_path, tmp_path, edit):
    state, config, metadata, _ = read_checkpoint(saved_path)
    edit(state)
    header = {
        "format": "rs2sam2",
        "format_version": "1",
        "model_config": json.dumps(config.to_dict()),
        "metadata": json.dumps(metadata),
        "weights_sha256": weights_sha256(state),
    }
    out = tmp_path / "edited.safetensors"
    save_file(state, str(out), metadata=header)
    return out


def test_wrong_shapes_are_listed(saved, tmp_path):
    key = "sam_mask_decoder.conv_s0.weight"

    def edit(state):
        state[key] = torch.zeros(3, 3)

    with pytest.raises(CheckpointError, match=r"(?s)wrong shape.*conv_s0\.weight: \[3, 3\] vs"):
        load_checkpoint(_rewrite(saved[0], tmp_path, edit))


def test_missing_and_unexpected_keys_are_listed(saved, tmp_path):
    def edit(state):
        del state["mpg.mask_linear.weight"]
        state["extra.head.weight"] = torch.zeros(2)

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(_rewrite(saved[0], tmp_path, edit))
    msg = str(err.value)
    assert "missing from the file (1)" in msg and "mpg.mask_linear.weight" in msg
    assert "unexpected in the file (1)" in msg and "extra.head.weight" in msg


def test_pickle_payload_is_refused_not_executed(tmp_path, tiny):
    pt = tmp_path / "model.pt"
    torch.save(tiny.state_dict(), pt)
    with pytest.raises(CheckpointError, match="pickle.*refused"):
        load_checkpoint(pt)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(raw)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_official_loader_refuses_code_in_pickles(tmp_path, capsys):
    evil = tmp_path / "sam2_evil.pt"
    torch.save({"model": {"no_mem_embed": torch.zeros(1)}, "x": _Evil()}, evil)
    model = build_model("test-tiny")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_sam2_weights(model, evil)
    assert "this must never run" not in capsys.readouterr().out


def test_foreign_safetensors_is_not_a_checkpoint(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an RS2-SAM 2 checkpoint"):
        load_checkpoint(plain)


def test_save_rejects_bad_metadata_and_missing_folder(tiny, tmp_path):
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tiny, tmp_path / "x.safetensors", metadata={"bad": object()})
    with pytest.raises(CheckpointError, match="does not exist"):
        save_checkpoint(tiny, tmp_path / "no" / "x.safetensors")
    assert not list(tmp_path.iterdir())  # nothing half-written


# ----------------------------------------------------------------------------- official weights


def test_official_layout_sam2_state_dict_loads(tmp_path):
    """A .pt laid out like sam2.1_hiera_*.pt ({"model": SAM2Base.state_dict()}) initialises the
    SAM 2 parts; adapters stay fresh and the video/memory modules are ignored."""
    torch.manual_seed(123)
    official = _build_sam2(get_model_config("test-tiny")).state_dict()
    path = tmp_path / "sam2.1_hiera_tiny_test.pt"
    torch.save({"model": official}, path)

    model = build_model("test-tiny")
    adapters_before = {n: p.clone() for n, p in model.named_parameters() if "_Adapter." in n}
    report = load_sam2_weights(model, path)
    assert report.ok
    assert any(k.startswith("memory_attention.") for k in report.ignored)
    mine = model.state_dict()
    for key in (
        "image_encoder.trunk.blocks.1.attn.qkv.weight",
        "no_mem_embed",
        "sam_mask_decoder.transformer.layers.0.mlp.layers.0.weight",
        "sam_prompt_encoder.mask_downscaling.0.weight",
        "image_encoder.neck.convs.0.conv.weight",
    ):
        assert torch.equal(mine[key], official[key]), key
    assert (
        len(report.loaded)
        == sum(1 for k in mine if k.startswith(("image_encoder.", "sam_")) and "_Adapter." not in k)
        + 1
    )
    for name, before in adapters_before.items():
        assert torch.equal(mine[name], before)


def test_sam2_weights_of_another_size_are_rejected_readably(tmp_path):
    official = _build_sam2(get_model_config("nano")).state_dict()
    path = tmp_path / "other.pt"
    torch.save({"model": official}, path)
    with pytest.raises(CheckpointError, match=r"(?s)do not fit test-tiny:\n.*wrong shape"):
        load_sam2_weights(build_model("test-tiny"), path)


def test_open_clip_weights_load_with_a_resized_grid(tmp_path):
    """An open_clip file for the same architecture at another image size loads (position
    embedding resized); a longer text context is cut to the model's."""
    clip = open_clip_model("rs2sam-tiny-clip", image_size=96, context_length=20)
    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))

    model = build_model("test-tiny")
    report = load_open_clip_weights(model, path)
    assert report.ok and "logit_scale" in report.ignored
    mine = model.state_dict()
    block = "transformer.resblocks.0.attn.in_proj_weight"
    assert torch.equal(mine[f"union.visual.{block}"], clip.state_dict()[f"visual.{block}"])
    assert torch.equal(mine["union.text.token_embedding.weight"], clip.token_embedding.weight)
    assert torch.equal(mine["union.text.positional_embedding"], clip.positional_embedding[:16])
    assert mine["union.visual.positional_embedding"].shape == (1 + 4 * 4, 32)


def test_open_clip_weights_of_another_model_are_rejected(tmp_path):
    clip = open_clip_model("rs2sam-nano-clip", image_size=256, context_length=32)
    path = tmp_path / "nano_clip.pt"
    torch.save(clip.state_dict(), path)
    with pytest.raises(CheckpointError, match="open_clip weights do not fit test-tiny"):
        load_open_clip_weights(build_model("test-tiny"), path)


def test_saved_checkpoint_has_the_usual_file_mode(tmp_path):
    """Written through a private (0600) temporary file, but saved as 0644, so a shared model
    folder works for other users."""
    from backend.model.checkpoint import save_checkpoint
    from backend.model.rs2sam import build_model

    path = tmp_path / "m.safetensors"
    save_checkpoint(build_model("test-tiny"), path)
    assert path.stat().st_mode & 0o777 == 0o644
