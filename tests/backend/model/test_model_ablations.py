"""Ablation switches of ModelConfig: ``use_bhfm=False`` (plain Hiera blocks) and
``use_mpg_dense=False`` (SAM's no-mask dense embedding instead of the MPG pseudo-mask)."""

from __future__ import annotations

import pytest
import torch

from backend.model.bhfm import AdaptedBlock
from backend.model.checkpoint import load_checkpoint, save_checkpoint
from backend.model.configs import ModelConfig, get_model_config
from backend.model.rs2sam import build_model


def _train_step(model, images):
    model.train()
    try:
        inputs = model.prepare_inputs(images, ["the red square", "noise"])
        out = model(inputs)
        loss = out.logits.sigmoid().mean() + out.boundary_weight.square().mean()
        loss.backward()
    finally:
        model.eval()
    return out


def test_defaults_keep_the_full_design():
    cfg = get_model_config("nano")
    assert cfg.use_bhfm and cfg.use_mpg_dense
    # checkpoints written before the switches existed still load (fields default to True)
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("use_bhfm", "use_mpg_dense")}
    assert ModelConfig.from_dict(old) == cfg


def test_no_bhfm_builds_plain_hiera_blocks_and_keeps_text_fusion(images):
    full = build_model("test-tiny")
    plain = build_model(get_model_config("test-tiny", use_bhfm=False))
    assert not any(isinstance(b, AdaptedBlock) for b in plain.image_encoder.trunk.blocks)
    assert plain.adapted_blocks() == [] and plain.parameter_counts()["adapters"] == 0
    assert not any("_Adapter." in n for n, _ in plain.named_parameters())
    n_adapters = full.parameter_counts()["adapters"]
    assert n_adapters > 0
    assert plain.parameter_counts()["total"] == full.parameter_counts()["total"] - n_adapters
    # text still conditions the output through the decoder fusion and the prompts
    with torch.inference_mode():
        a = plain(plain.prepare_inputs(images[:1], ["the red square"])).logits
        b = plain(plain.prepare_inputs(images[:1], ["nothing at all here"])).logits
    assert (a - b).abs().max() > 1e-6
    assert any(n.startswith("text_fusion.") for n, _ in plain.named_param_groups()["new"])


def test_no_bhfm_loads_plain_sam2_keys():
    plain = build_model(get_model_config("test-tiny", use_bhfm=False))
    names = {n for n, _ in plain.image_encoder.trunk.named_parameters()}
    assert "blocks.0.attn.qkv.weight" in names and "blocks.0.mlp.layers.0.weight" in names


def test_no_mpg_dense_uses_the_no_mask_embedding(images):
    model = build_model(get_model_config("test-tiny", use_mpg_dense=False))
    assert model.mpg is None and not any(n.startswith("mpg.") for n, _ in model.named_parameters())
    emb = model.sam_prompt_encoder.no_mask_embed.weight
    assert emb.requires_grad  # it is now the (learned) dense prompt
    assert not any(p.requires_grad for p in model.sam_prompt_encoder.mask_downscaling.parameters())
    out = _train_step(model, images)
    assert out.logits.shape == (2, 1, 128, 128)
    assert torch.count_nonzero(out.pseudo_mask) == 0 and out.pseudo_mask.shape[:2] == (2, 1)
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    # changing the dense embedding changes the output: it really is the dense prompt
    with torch.inference_mode():
        inputs = model.prepare_inputs(images, ["the red square", "noise"])
        before = model(inputs).logits.clone()
        emb.add_(1.0)
        after = model(inputs).logits
        emb.sub_(1.0)
    assert (before - after).abs().max() > 1e-4


@pytest.mark.parametrize(
    "overrides",
    [{"use_bhfm": False}, {"use_mpg_dense": False}, {"use_bhfm": False, "use_mpg_dense": False}],
)
def test_every_trainable_parameter_gets_a_gradient(overrides, images):
    model = build_model(get_model_config("test-tiny", **overrides))
    _train_step(model, images)
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    named = model.named_param_groups()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n, _ in named["new"]} | {n for n, _ in named["base"]} == trainable


def test_batched_equals_one_by_one_without_mpg(images):
    model = build_model(get_model_config("test-tiny", use_mpg_dense=False, use_bhfm=False))
    texts = ["the red square", "noise"]
    with torch.inference_mode():
        batch = model(model.prepare_inputs(images, texts)).logits
        for i in range(2):
            one = model(model.prepare_inputs(images[i : i + 1], texts[i : i + 1])).logits
            torch.testing.assert_close(batch[i : i + 1], one, atol=1e-5, rtol=1e-4)


def test_ablation_checkpoint_round_trip(tmp_path, images):
    model = build_model(get_model_config("test-tiny", use_bhfm=False, use_mpg_dense=False))
    path = tmp_path / "abl.safetensors"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path).model
    assert loaded.config == model.config and loaded.mpg is None
    with torch.inference_mode():
        inputs = model.prepare_inputs(images, ["a", "b"])
        torch.testing.assert_close(loaded(inputs).logits, model(inputs).logits)
