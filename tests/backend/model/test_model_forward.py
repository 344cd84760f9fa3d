"""RS2SAM2: shapes through every stage, BHFM wrapper fidelity, text conditioning, padding,
batching, freezing, gradients and parameter groups."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from backend.errors import ConfigError, InputError
from backend.model.bhfm import AdaptedBlock, TextState
from backend.model.configs import get_model_config
from backend.model.rs2sam import ModelInputs, _build_sam2, build_model


def _forward(model, inputs, **kw):
    with torch.inference_mode():
        return model(inputs, **kw)


# ----------------------------------------------------------------------------- shapes


def test_shapes_and_dtypes_through_every_stage(tiny, images):
    texts = ["the red square", "noise"]
    inputs = tiny.prepare_inputs(images, texts)
    S, R, g, C = tiny.image_size, tiny.clip_image_size, tiny.grid_size, tiny.prompt_dim
    assert (S, R, g, C) == (128, 64, 4, 32)
    assert inputs.sam_images.shape == (2, 3, S, S) and inputs.sam_images.dtype == torch.float32
    assert inputs.clip_images.shape == (2, 3, R, R) and inputs.clip_images.dtype == torch.float32
    L = inputs.tokens.shape[1]
    assert inputs.tokens.dtype == torch.int64 and inputs.text_pad.dtype == torch.bool
    assert inputs.text_pad.shape == (2, L)
    # SOT + 3 words + EOT for the longer text, which has no padding
    assert (
        L == 5 and not inputs.text_pad[0].any() and inputs.text_pad[1].tolist() == [0, 0, 0, 1, 1]
    )

    with torch.inference_mode():
        union = tiny.union(inputs.clip_images, inputs.tokens, inputs.text_pad)
        d = tiny.union.dim
        assert union.cls.shape == (2, 1, d)
        assert union.vis.shape == (2, g, g, d)
        assert union.txt.shape == (2, L, d)
        assert torch.equal(union.txt_pad, inputs.text_pad)
        pseudo = tiny.mpg(union.cls, union.vis)
        assert pseudo.shape == (2, 1, g, g) and ((pseudo > 0) & (pseudo < 1)).all()
        text_feat = tiny.text_proj(union.txt)
        image_embed, (s0, s1) = tiny.encode_image(inputs.sam_images, text_feat, inputs.text_pad)
        assert image_embed.shape == (2, C, S // 16, S // 16)
        assert s0.shape == (2, C // 8, S // 4, S // 4) and s1.shape == (2, C // 4, S // 8, S // 8)
        assert tiny.text_state.text is None  # cleared after the trunk ran
        out = tiny(inputs)
    assert out.logits.shape == (2, 1, S, S) and out.logits.dtype == torch.float32
    assert out.pseudo_mask.shape == (2, 1, g, g)
    assert out.boundary_weight.shape == (2,)
    assert out.text_feat.shape == (2, L, C)
    assert torch.isfinite(out.logits).all()
    assert torch.allclose(out.pseudo_mask, pseudo)


def test_nano_forward_at_native_size():
    nano = build_model("nano")
    assert nano.config.freeze_trunk is False
    image = np.random.default_rng(1).integers(0, 256, (1, 300, 200, 3), dtype=np.uint8)
    inputs = nano.prepare_inputs(image, ["two planes near the hangar"])
    S, R, g, C, d = 256, 256, 16, 256, nano.union.dim
    assert (nano.image_size, nano.clip_image_size, nano.grid_size, nano.prompt_dim) == (S, R, g, C)
    assert inputs.sam_images.shape == (1, 3, S, S) and inputs.sam_images.dtype == torch.float32
    assert inputs.clip_images.shape == (1, 3, R, R) and inputs.clip_images.dtype == torch.float32
    L = inputs.tokens.shape[1]
    assert inputs.tokens.dtype == torch.int64 and inputs.text_pad.shape == (1, L)
    with torch.inference_mode():
        union = nano.union(inputs.clip_images, inputs.tokens, inputs.text_pad)
        assert union.cls.shape == (1, 1, d) and union.vis.shape == (1, g, g, d)
        assert union.txt.shape == (1, L, d) and union.cls.dtype == torch.float32
        text_feat = nano.text_proj(union.txt)
        image_embed, (s0, s1) = nano.encode_image(inputs.sam_images, text_feat, inputs.text_pad)
        assert image_embed.shape == (1, C, S // 16, S // 16)
        assert s0.shape == (1, C // 8, S // 4, S // 4) and s1.shape == (1, C // 4, S // 8, S // 8)
        assert image_embed.dtype == s0.dtype == s1.dtype == torch.float32
    out = _forward(nano, inputs)
    assert out.logits.shape == (1, 1, 256, 256) and out.logits.dtype == torch.float32
    assert out.pseudo_mask.shape == (1, 1, 16, 16)
    assert out.text_feat.shape[-1] == 256
    assert torch.isfinite(out.logits).all()
    counts = nano.parameter_counts()
    assert 5e6 <= counts["total"] <= 15e6
    assert counts["trainable"] > 0.95 * counts["total"]  # the whole trunk trains


def test_two_preprocessing_paths(tiny):
    """SAM view: ImageNet mean/std at the model size; CLIP view: CLIP mean/std at its size."""
    rgb = np.array([200, 100, 30], dtype=np.uint8)
    image = np.broadcast_to(rgb, (1, 48, 80, 3)).copy()  # not square, not a model size
    inputs = tiny.prepare_inputs(image, ["a roof"])
    x = torch.tensor(rgb, dtype=torch.float32) / 255.0
    imagenet = (torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225]))
    openai = (
        torch.tensor([0.48145466, 0.4578275, 0.40821073]),
        torch.tensor([0.26862954, 0.26130258, 0.27577711]),
    )
    for view, size, (mean, std) in (
        (inputs.sam_images, tiny.image_size, imagenet),
        (inputs.clip_images, tiny.clip_image_size, openai),
    ):
        assert view.shape == (1, 3, size, size)
        want = ((x - mean) / std).reshape(1, 3, 1, 1).expand_as(view)
        torch.testing.assert_close(view, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [96, 160])
def test_feature_sizes_follow_the_input_size(tiny, size):
    """No 1024-px table: any multiple of 32 runs, and logits come back at the input size."""
    inputs = ModelInputs(
        torch.zeros(1, 3, size, size),
        torch.zeros(1, 3, tiny.clip_image_size, tiny.clip_image_size),
        *tiny.tokenize(["a road"]),
    )
    out = _forward(tiny, inputs)
    assert out.logits.shape == (1, 1, size, size)
    assert _forward(tiny, inputs, output_size=(50, 70)).logits.shape == (1, 1, 50, 70)


def test_built_at_another_image_size():
    model = build_model(get_model_config("test-tiny", image_size=160))
    out = _forward(model, model.prepare_inputs(np.zeros((1, 40, 40, 3), np.uint8), ["x"]))
    assert out.logits.shape == (1, 1, 160, 160)


def test_design_b_runs_and_uses_vit_width(tiny_b, images):
    assert tiny_b.config.union_encoder == "earlyfusion"
    assert tiny_b.union.dim == tiny_b.union.vision_width
    out = _forward(tiny_b, tiny_b.prepare_inputs(images, ["the red square", "noise"]))
    assert out.logits.shape == (2, 1, 128, 128)
    assert torch.isfinite(out.logits).all()


# ----------------------------------------------------------------------------- BHFM wrapper


def _trunk_blocks():
    sam = _build_sam2(get_model_config("test-tiny"))
    return sam.image_encoder.trunk


def test_adapted_block_with_zero_adapters_equals_the_original_block():
    """Every block kind (q-pool, windowed, global) reproduces sam2's output bit for bit."""
    trunk = _trunk_blocks()
    state = TextState()
    x = torch.randn(2, 32, 32, 16)
    text = torch.randn(2, 5, 32)
    pad = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)
    kinds = set()
    with torch.no_grad():
        for block in trunk.blocks:
            kinds.add((block.q_stride is not None, block.window_size == 0))
            adapted = AdaptedBlock(copy.deepcopy(block), state, text_dim=32)
            expected = block(x)
            state.clear()
            assert torch.equal(adapted(x), expected)
            state.set(text, pad)  # with a text state, zero adapters still change nothing
            assert torch.equal(adapted(x), expected)
            state.clear()
            x = expected
    assert kinds == {(True, False), (False, False), (False, True)}


def test_adapted_block_with_trained_adapters_differs_and_updates_text():
    block = _trunk_blocks().blocks[0]
    state = TextState()
    adapted = AdaptedBlock(copy.deepcopy(block), state, text_dim=32)
    torch.nn.init.normal_(adapted.Space_Adapter.fc2.weight)
    torch.nn.init.normal_(adapted.MLP_Adapter.fc2.weight)
    x = torch.randn(1, 32, 32, 16)
    text = torch.randn(1, 4, 32)
    state.set(text, torch.zeros(1, 4, dtype=torch.bool))
    with torch.no_grad():
        y = adapted(x)
        assert not torch.allclose(y, block(x))
    assert not torch.allclose(state.text, text)  # T <- 0.8 T + 0.2 out(t)


def test_model_keeps_sam2_parameter_names(tiny):
    names = {n for n, _ in tiny.named_parameters()}
    assert "image_encoder.trunk.blocks.0.attn.qkv.weight" in names
    assert "image_encoder.trunk.blocks.0.Space_Adapter.fc1.weight" in names
    assert "image_encoder.trunk.blocks.0.MLP_Adapter.fc1.weight" in names
    assert all(isinstance(b, AdaptedBlock) for b in tiny.image_encoder.trunk.blocks)
    # the last block's text update would be thrown away, so it is not built
    last = tiny.image_encoder.trunk.blocks[-1].Space_Adapter
    assert not last.update_text and not hasattr(last, "text_out")


# ----------------------------------------------------------------------------- text and batching


def test_text_conditions_the_output(tiny_any, images):
    a = _forward(tiny_any, tiny_any.prepare_inputs(images[:1], ["the red square"]))
    b = _forward(tiny_any, tiny_any.prepare_inputs(images[:1], ["the green trees on the left"]))
    assert (a.logits - b.logits).abs().max() > 1e-5
    assert (a.pseudo_mask - b.pseudo_mask).abs().max() > 1e-6


def test_padding_does_not_change_the_output(tiny_any, images):
    tokens, pad = tiny_any.tokenize(["the red square"])
    L = tokens.shape[1]
    padded = torch.zeros(1, L + 9, dtype=torch.int64)
    padded[:, :L] = tokens
    padded_mask = torch.ones(1, L + 9, dtype=torch.bool)
    padded_mask[:, :L] = pad
    base = tiny_any.prepare_inputs(images[:1], ["the red square"])
    longer = ModelInputs(base.sam_images, base.clip_images, padded, padded_mask)
    a, b = _forward(tiny_any, base), _forward(tiny_any, longer)
    torch.testing.assert_close(b.logits, a.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.pseudo_mask, a.pseudo_mask, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(b.boundary_weight, a.boundary_weight, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(b.text_feat[:, :L], a.text_feat, atol=1e-5, rtol=1e-5)


def test_batched_equals_one_by_one(tiny_any, images):
    texts = ["the red square", "a long winding river next to the tall buildings"]
    batch = _forward(tiny_any, tiny_any.prepare_inputs(images, texts))
    for i in range(2):
        single = _forward(tiny_any, tiny_any.prepare_inputs(images[i : i + 1], texts[i : i + 1]))
        torch.testing.assert_close(batch.logits[i : i + 1], single.logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            batch.pseudo_mask[i : i + 1], single.pseudo_mask, atol=1e-6, rtol=1e-5
        )


def test_long_text_is_truncated_with_a_warning(tiny, caplog):
    long_text = " ".join(["building"] * 40)
    with caplog.at_level("WARNING", logger="backend.model.rs2sam"):
        tokens, pad = tiny.tokenize([long_text])
    assert tokens.shape == (1, tiny.config.context_length)
    assert int(tokens[0, -1]) == int(tokens.max())  # EOT kept at the end
    assert not pad.any()
    assert "truncated" in caplog.text


@pytest.mark.parametrize(
    ("images", "texts", "match"),
    [
        (np.zeros((1, 64, 64), np.uint8), ["x"], r"\(B, H, W, 3\)"),
        (np.zeros((1, 64, 64, 4), np.uint8), ["x"], r"\(B, H, W, 3\)"),
        (np.zeros((1, 64, 64, 3), np.float32), ["x"], "uint8"),
        (np.zeros((1, 31, 64, 3), np.uint8), ["x"], "at least 32x32"),
        (np.zeros((2, 64, 64, 3), np.uint8), ["x"], "2 images but 1 texts"),
        (np.zeros((1, 64, 64, 3), np.uint8), ["   "], "empty or whitespace"),
        (np.zeros((1, 64, 64, 3), np.uint8), [None], "must be a str"),
    ],
)
def test_prepare_inputs_rejects_bad_input(tiny, images, texts, match):
    with pytest.raises(InputError, match=match):
        tiny.prepare_inputs(images, texts)


def test_unknown_config_name():
    names = "valid names: base, large, lgce-nano, lgce-paper, lgce-tiny, nano, official-large"
    with pytest.raises(ConfigError, match=names):
        build_model("test-tiny-typo")


# ----------------------------------------------------------------------------- training side


def _train_step(model, images):
    model.train()
    try:
        inputs = model.prepare_inputs(images, ["the red square", "noise"])
        out = model(inputs)
        loss = out.logits.sigmoid().mean() + out.boundary_weight.square().mean()
        loss.backward()
    finally:
        model.eval()


def test_gradients_reach_adapters_mpg_fusion_decoder_not_frozen_trunk(images, open_adapters):
    model = open_adapters(build_model("test-tiny"))
    assert model.config.freeze_trunk
    _train_step(model, images)
    grads = {n: p.grad for n, p in model.named_parameters()}

    def reached(prefix: str) -> bool:
        hits = [g for n, g in grads.items() if n.startswith(prefix) or f".{prefix}" in n]
        return bool(hits) and all(g is not None and g.abs().sum() > 0 for g in hits)

    for part in ("Space_Adapter.", "MLP_Adapter."):
        assert reached(part), part
    for part in ("mpg.", "text_fusion.", "sparse_proj.", "text_proj.", "boundary_head."):
        assert reached(part), part
    for part in ("sam_mask_decoder.transformer.", "sam_prompt_encoder.mask_downscaling."):
        assert reached(part), part
    for part in ("union.layers.", "union.visual.", "union.text.transformer."):
        assert reached(part), part
    trunk = [
        (n, g) for n, g in grads.items() if n.startswith("image_encoder.") and "_Adapter." not in n
    ]
    assert trunk and all(g is None for _, g in trunk)
    assert all(not p.requires_grad for n, p in model.named_parameters() if n in dict(trunk))


def test_zero_init_adapters_still_get_gradient(images):
    model = build_model("test-tiny")
    _train_step(model, images)
    block = model.image_encoder.trunk.blocks[1]
    assert block.Space_Adapter.fc2.weight.grad.abs().sum() > 0
    assert block.MLP_Adapter.fc2.weight.grad.abs().sum() > 0


def test_unfrozen_trunk_trains():
    model = build_model(get_model_config("test-tiny", freeze_trunk=False))
    trunk = [p for n, p in model.named_parameters() if n.startswith("image_encoder.trunk.")]
    assert all(p.requires_grad for p in trunk)
    groups = model.named_param_groups()
    assert any(n.startswith("image_encoder.trunk.blocks.0.attn") for n, _ in groups["base"])


def test_param_groups_partition_the_trainable_parameters(tiny_any):
    named = tiny_any.named_param_groups()
    new = {n for n, _ in named["new"]}
    base = {n for n, _ in named["base"]}
    trainable = {n for n, p in tiny_any.named_parameters() if p.requires_grad}
    assert not new & base and new | base == trainable
    assert {n for n in new if "_Adapter." in n} == {
        n for n, _ in tiny_any.named_parameters() if "_Adapter." in n
    }
    assert any(n.startswith("mpg.") for n in new) and any(n.startswith("text_fusion.") for n in new)
    assert any(n.startswith("sam_mask_decoder.") for n in base)
    assert any(n.startswith("union.visual.") for n in base)
    assert any(n.startswith("union.text.") for n in base)
    assert not any(n.startswith(("union.visual.", "union.text.")) for n in new)
    # never-used heads are frozen (not DDP "unused parameters")
    assert not any("iou_prediction_head" in n or "point_embeddings" in n for n in trainable)
    groups = tiny_any.param_groups()
    assert [len(v) for v in groups.values()] == [len(named["new"]), len(named["base"])]


def test_freeze_clip_keeps_fusion_trainable():
    a = build_model(get_model_config("test-tiny", freeze_clip=True))
    assert all(not p.requires_grad for p in a.union.tower_parameters())
    assert all(p.requires_grad for p in a.union.layers.parameters())
    b = build_model(get_model_config("test-tiny", union_encoder="earlyfusion", freeze_clip=True))
    assert all(p.requires_grad for p in b.union.fused_parameters())
    assert not b.union.text.token_embedding.weight.requires_grad


def test_same_config_same_random_weights():
    a, b = build_model("test-tiny"), build_model("test-tiny")
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=False)
    )


# ----------------------------------------------------------------------------- big configs


@pytest.mark.parametrize(("name", "low", "high"), [("large", 29e6, 31e6), ("base", 4.5e6, 5.5e6)])
def test_adapter_parameter_count_on_meta(name, low, high):
    """Hiera-L adapters ≈ 30 M (paper ≈30.3 M), Hiera-S ≈ 5 M; built without memory."""
    model = build_model(name, device="meta")
    counts = model.parameter_counts()
    assert low <= counts["adapters"] <= high, counts
    assert model.image_encoder.trunk.blocks[0].attn.qkv.weight.is_meta
    if name == "large":
        assert len(model.image_encoder.trunk.blocks) == 48 and model.grid_size == 16


@pytest.mark.parametrize("design", ["twotower", "earlyfusion"])
def test_every_trainable_parameter_gets_a_gradient(design, images):
    """No "unused parameters" (DDP without find_unused_parameters); frozen ones get none."""
    model = build_model(get_model_config("test-tiny", union_encoder=design))
    _train_step(model, images)
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
