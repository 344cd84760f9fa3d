"""backend.model.clip_towers: our CLIP towers equal open_clip's (names, init, outputs)."""

from __future__ import annotations

import json

import pytest
import torch
from open_clip_ref import as_towers_state, open_clip_model

from backend.errors import ConfigError
from backend.model.clip_towers import ClipTowers, clip_spec, resize_position_table
from backend.model.clip_towers.spec import open_clip_data_dir, spec_from_dict
from backend.model.configs import get_model_config
from backend.model.union import build_clip

CASES = [  # (CLIP model, image px, context tokens)
    ("rs2sam-tiny-clip", 64, 16),
    ("rs2sam-nano-clip", 256, 32),
    ("ViT-B-16", 48, 20),  # open_clip's built-in JSON at a small image size
]


def _towers_from(clip: torch.nn.Module, name: str, size: int, ctx: int) -> ClipTowers:
    """Ours, strictly loaded from the open_clip model.

    The small ones are built with another seed, ViT-B-16 on the meta device and loaded by
    assignment (as checkpoints load; and no 86 M random draws).
    """
    spec = clip_spec(name, image_size=size, context_length=ctx)
    if name == "ViT-B-16":
        ours = ClipTowers(spec, meta=True).eval()
        ours.load_state_dict(as_towers_state(clip), strict=True, assign=True)
        return ours
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        ours = ClipTowers(spec).eval()
    ours.load_state_dict(as_towers_state(clip), strict=True)
    return ours


@pytest.mark.parametrize(("name", "size", "ctx"), CASES[:2])
def test_seeded_init_equals_open_clip(name: str, size: int, ctx: int) -> None:
    clip = open_clip_model(name, image_size=size, context_length=ctx, seed=7)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        ours = ClipTowers(clip_spec(name, image_size=size, context_length=ctx))
    theirs = as_towers_state(clip)
    mine = ours.state_dict()
    assert sorted(mine) == sorted(theirs)
    for key, value in theirs.items():
        assert torch.equal(mine[key], value), key


@pytest.mark.parametrize(("name", "size", "ctx"), CASES)
def test_outputs_equal_open_clip(name: str, size: int, ctx: int) -> None:
    clip = open_clip_model(name, image_size=size, context_length=ctx, seed=1)
    ours = _towers_from(clip, name, size, ctx)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, size, size, generator=gen)
    tokens = torch.randint(1, 49000, (2, ctx), generator=gen)
    tokens[0, 4], tokens[1, ctx - 1] = 49407, 49407  # EOT (highest id) inside and at the end
    with torch.no_grad():
        ref = clip.visual.forward_intermediates(
            images,
            indices=1,
            normalize_intermediates=True,
            intermediates_only=True,
            output_fmt="NLC",
            output_extra_tokens=True,
        )
        got = ours.visual.tokens(images)
        torch.testing.assert_close(got[:, 1:], ref["image_intermediates"][-1], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            got[:, :1], ref["image_intermediates_prefix"][-1], atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            ours.visual(images), clip.encode_image(images), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            ours.visual.embed(images), clip.visual._embeds(images), atol=1e-5, rtol=0
        )
        txt, eot = ours.text(tokens)
        ref_txt = clip.forward_intermediates(
            text=tokens, text_indices=1, normalize_intermediates=True, intermediates_only=True
        )["text_intermediates"][-1]
        torch.testing.assert_close(eot, clip.encode_text(tokens), atol=1e-5, rtol=0)
        torch.testing.assert_close(txt, ref_txt, atol=1e-5, rtol=0)
    assert ours.visual.grid_size == clip.visual.grid_size
    assert ours.visual.output_dim == clip.visual.output_dim
    assert (ours.visual.image_mean, ours.visual.image_std) == (
        clip.visual.image_mean,
        clip.visual.image_std,
    )


def test_options_we_implement_equal_open_clip() -> None:
    """quick_gelu, layer scale, no ln_pre, mlp_ratio and a biased text projection."""
    from open_clip.model import CLIP

    vision = {
        "image_size": 32,
        "layers": 2,
        "width": 32,
        "patch_size": 8,
        "head_width": 16,
        "mlp_ratio": 2.0,
        "ls_init_value": 0.5,
        "no_ln_pre": True,
    }
    text = {
        "context_length": 8,
        "vocab_size": 49408,
        "width": 32,
        "heads": 4,
        "layers": 2,
        "ls_init_value": 0.25,
        "proj_bias": True,
        "mlp_ratio": 3.0,
    }
    data = {"embed_dim": 24, "quick_gelu": True, "vision_cfg": vision, "text_cfg": text}
    torch.manual_seed(5)
    clip = CLIP(24, dict(vision), dict(text), quick_gelu=True).eval()
    torch.manual_seed(5)
    ours = ClipTowers(spec_from_dict("custom", data)).eval()
    theirs = as_towers_state(clip)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.items()
    }
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in theirs.items())
    images, tokens = torch.randn(2, 3, 32, 32), torch.randint(1, 49407, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(
            ours.visual(images), clip.encode_image(images), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            ours.text(tokens)[1], clip.encode_text(tokens), atol=1e-5, rtol=0
        )


def test_large_config_names_and_shapes_equal_open_clip_on_meta() -> None:
    """ViT-L-14 (the ``large`` config's CLIP) at 336 px: built on meta, nothing allocated."""
    import open_clip

    with torch.device("meta"):
        clip = open_clip.create_model(
            "ViT-L-14",
            pretrained=None,
            force_image_size=336,
            force_context_length=40,
            device="meta",
        )
    ours = build_clip(
        get_model_config("large", clip_image_size=336, context_length=40), device="meta"
    )
    theirs = {k: tuple(v.shape) for k, v in as_towers_state(clip).items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == theirs
    assert theirs["visual.positional_embedding"] == (1 + 24 * 24, 1024)
    assert all(p.is_meta for p in ours.parameters())


@pytest.mark.parametrize("config", ["test-tiny", "nano", "base", "large"])
def test_registry_configs_have_a_clip_spec(config: str) -> None:
    cfg = get_model_config(config)
    spec = clip_spec(
        cfg.clip_model, image_size=cfg.clip_image_size, context_length=cfg.context_length
    )
    assert spec.vision.image_size == cfg.clip_image_size
    assert spec.text.context_length == cfg.context_length


def _vit_b16() -> dict:
    folder = open_clip_data_dir()
    assert folder is not None
    return json.loads((folder / "model_configs" / "ViT-B-16.json").read_text())


@pytest.mark.parametrize(
    ("tower", "option", "value"),
    [
        ("vision_cfg", "attentional_pool", True),
        ("vision_cfg", "pos_embed_type", "sin_cos_2d"),
        ("vision_cfg", "pool_type", "avg"),
        ("vision_cfg", "final_ln_after_pool", True),
        ("vision_cfg", "qk_norm", True),
        ("vision_cfg", "timm_model_name", "vit_base_patch16_224"),
        ("vision_cfg", "norm_kwargs", {"eps": 1e-6}),
        ("vision_cfg", "patch_dropout", 0.5),
        ("vision_cfg", "something_new", 1),
        ("text_cfg", "no_causal_mask", True),
        ("text_cfg", "embed_cls", True),
        ("text_cfg", "pool_type", "last"),
        ("text_cfg", "act_kwargs", {"approximate": "tanh"}),
        ("text_cfg", "tokenizer_kwargs", {"clean": "canonicalize"}),
        (None, "multimodal_cfg", {"width": 512}),
    ],
)
def test_unsupported_options_are_refused_by_name(
    tower: str | None, option: str, value: object
) -> None:
    data = _vit_b16()
    (data[tower] if tower else data)[option] = value
    with pytest.raises(ConfigError, match=option):
        spec_from_dict("ViT-B-16", data)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("ViT-B-16-SigLIP", "Hugging Face"),
        ("RN50", "ResNet"),
        ("coca_ViT-B-32", "multimodal_cfg"),
        ("no-such-model", "no CLIP model"),
        ("../ViT-B-16", "not a plain"),
    ],
)
def test_unsupported_models_are_refused(name: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        clip_spec(name)


def test_build_clip_on_meta_draws_no_random_numbers() -> None:
    state = torch.random.get_rng_state()
    towers = build_clip(get_model_config("nano"), device="meta")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(p.is_meta for p in towers.parameters())


def test_position_table_resize_equals_open_clip() -> None:
    from open_clip.model import resize_pos_embed

    table = torch.randn(1 + 6 * 6, 16)
    target = type("M", (), {"visual": type("V", (), {"grid_size": (4, 4)})()})()
    state = {"visual.positional_embedding": table}
    resize_pos_embed(state, target)
    got = resize_position_table(table, 4)
    assert got.shape == (17, 16)
    torch.testing.assert_close(got, state["visual.positional_embedding"], atol=0, rtol=0)
    assert resize_position_table(table, 6) is table


@pytest.mark.parametrize("queries", [1, 7])
def test_padding_bias_attends_like_a_key_padding_mask(queries: int) -> None:
    from backend.model.bhfm import padding_bias

    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    q, kv = torch.randn(3, queries, 16), torch.randn(3, 5, 16)
    pad = torch.tensor([[False] * 5, [False, False, True, True, True], [False] * 4 + [True]])
    with torch.no_grad():
        ref = attn(q, kv, kv, key_padding_mask=pad, need_weights=False)[0]
        got = attn(q, kv, kv, attn_mask=padding_bias(pad, 4, queries, q.dtype), need_weights=False)[
            0
        ]
        unmasked = attn(q, kv, kv, need_weights=False)[0]
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    assert not torch.allclose(got[1], unmasked[1], atol=1e-3)  # the mask does something
    assert padding_bias(None, 4, queries, q.dtype) is None
