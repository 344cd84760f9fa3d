"""CLIP architecture descriptions read from open_clip-format JSON files, without open_clip.

A model name resolves to ``backend/model/open_clip_configs/<name>.json`` (ours) or to
``<open_clip package>/model_configs/<name>.json`` (open_clip's built-ins, found with
``importlib.util.find_spec``, which does not import the package). Only the options our towers
(:mod:`.vision`, :mod:`.text`) implement are accepted; every other option is refused with a
:class:`~backend.errors.ConfigError` that names it, so a config never builds a tower that
silently differs from open_clip's.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ...errors import ConfigError

__all__ = [
    "ClipSpec",
    "TextSpec",
    "VisionSpec",
    "clip_spec",
    "open_clip_data_dir",
    "spec_from_dict",
]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
_HUB_KEYS = (
    "hf_model_name",
    "hf_tokenizer_name",
    "hf_model_pretrained",
    "hf_proj_type",
    "hf_pooler_type",
    "tokenizer_mode",
)
_TOP_IGNORED = ("init_logit_scale", "init_logit_bias", "nonscalar_logit_scale", "custom_text")
"""Top-level keys that do not change the towers (logit scale/bias live outside them)."""

# option -> value(s) we implement; any other value is refused
_VISION_FIXED: dict[str, tuple[Any, ...]] = {
    "pool_type": ("tok",),
    "pos_embed_type": ("learnable",),
    "attentional_pool": (False,),
    "final_ln_after_pool": (False,),
    "patch_dropout": (0, 0.0),
    "act_kwargs": (None, {}),
    "norm_kwargs": (None, {}),
    "block_type": (None, "default"),
    "timm_model_name": (None, ""),
}
_TEXT_FIXED: dict[str, tuple[Any, ...]] = {
    "pool_type": ("argmax",),
    "proj_type": ("linear", "none"),
    "no_causal_mask": (False,),
    "embed_cls": (False,),
    "act_kwargs": (None, {}),
    "norm_kwargs": (None, {}),
    "tokenizer_kwargs": (None, {}),
    "block_type": (None, "default"),
}
_CUSTOM_BLOCK = (
    "qk_norm",
    "scaled_cosine_attn",
    "scale_heads",
    "scale_attn_inner",
    "scale_attn",
    "scale_fc",
)
_FREE = ("output_tokens",)  # output switches with no parameters (our towers return both)
_VISION_FREE = (
    *_FREE,
    "attn_pooler_queries",
    "attn_pooler_heads",
    "timm_model_pretrained",
    "timm_pool",
    "timm_proj",
    "timm_proj_bias",
    "timm_drop",
    "timm_drop_path",
)
_TEXT_FREE = (*_FREE, "pad_id", "eos_id")  # used by open_clip only with pad masks / "eos" pool


@dataclass(frozen=True)
class VisionSpec:
    """A CLIP ViT: ``image_size`` and ``patch_size`` in pixels, ``width`` channels."""

    image_size: int
    patch_size: int
    width: int
    layers: int
    heads: int
    mlp_ratio: float
    ls_init_value: float | None
    ln_pre: bool
    output_dim: int
    quick_gelu: bool

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class TextSpec:
    """A causal CLIP text transformer over ``context_length`` BPE tokens."""

    context_length: int
    vocab_size: int
    width: int
    layers: int
    heads: int
    mlp_ratio: float
    ls_init_value: float | None
    output_dim: int | None  # None: no text projection
    proj_bias: bool
    quick_gelu: bool


@dataclass(frozen=True)
class ClipSpec:
    """Both towers of one CLIP model (``name`` as in open_clip)."""

    name: str
    vision: VisionSpec
    text: TextSpec


def open_clip_data_dir() -> Path | None:
    """Folder of the installed open_clip package (located, not imported), or None."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def _config_file(name: str) -> Path | None:
    model_package = (__package__ or "backend.model.clip_towers").rsplit(".", 1)[0]
    ours = resources.files(model_package) / "open_clip_configs" / f"{name}.json"
    if ours.is_file():
        return Path(str(ours))
    package = open_clip_data_dir()
    builtin = package / "model_configs" / f"{name}.json" if package is not None else None
    return builtin if builtin is not None and builtin.is_file() else None


@lru_cache(maxsize=16)
def _read_config(name: str) -> dict[str, Any]:
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(f"clip_model {name[:80]!r} is not a plain open_clip model name")
    path = _config_file(name)
    data = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), t)
        for k, t in (("embed_dim", int), ("vision_cfg", dict), ("text_cfg", dict))
    ):
        raise ConfigError(
            f"no CLIP model {name!r}: use one of open_clip's built-in model names "
            "(open_clip/model_configs/*.json) or add a JSON with embed_dim, vision_cfg and "
            "text_cfg to backend/model/open_clip_configs/"
        )
    return data


def _check_options(
    name: str,
    tower: str,
    cfg: dict[str, Any],
    known: set[str],
    fixed: dict[str, tuple[Any, ...]],
    free: tuple[str, ...],
) -> None:
    for key, value in cfg.items():
        if key in _CUSTOM_BLOCK:
            if value:
                raise ConfigError(
                    f"{name}: {tower}.{key}={value!r} (open_clip's custom attention "
                    "block) is not supported"
                )
        elif key in fixed:
            if not any(value == ok and type(value) is type(ok) for ok in fixed[key]):
                raise ConfigError(
                    f"{name}: {tower}.{key}={value!r} is not supported; "
                    f"supported: {list(fixed[key])}"
                )
        elif key not in known and key not in free:
            raise ConfigError(f"{name}: CLIP option {tower}.{key} is not supported")


def _number(name: str, where: str, value: Any, kind: type, low: float = 1) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind | int) or value < low:
        raise ConfigError(f"{name}: {where} must be a {kind.__name__} >= {low}, got {value!r}")
    return kind(value)


def clip_spec(
    name: str, *, image_size: int | None = None, context_length: int | None = None
) -> ClipSpec:
    """The towers of CLIP model ``name``, with open_clip's ``force_*`` overrides applied.

    Args:
        name: open_clip model name (ours or a built-in), e.g. ``"rs2sam-nano-clip"``.
        image_size: Vision input size in pixels, replacing the JSON's (open_clip's
            ``force_image_size``).
        context_length: Text context in tokens, replacing the JSON's.

    Raises:
        ConfigError: Unknown name, a Hugging Face / timm tower, or an unsupported option.
    """
    return spec_from_dict(
        name, _read_config(name), image_size=image_size, context_length=context_length
    )


def spec_from_dict(
    name: str,
    data: dict[str, Any],
    *,
    image_size: int | None = None,
    context_length: int | None = None,
) -> ClipSpec:
    """:func:`clip_spec` of an already parsed open_clip model JSON ``data``.

    Raises:
        ConfigError: A Hugging Face / timm tower, or an option our towers do not implement.
    """
    if not all(isinstance(data.get(k), dict) for k in ("vision_cfg", "text_cfg")):
        raise ConfigError(f"{name}: a CLIP config needs vision_cfg and text_cfg objects")
    vis, txt = dict(data["vision_cfg"]), dict(data["text_cfg"])
    hub = {k: txt[k] for k in _HUB_KEYS if txt.get(k)}
    if hub:
        raise ConfigError(
            f"{name}: the text tower comes from Hugging Face ({hub}); only "
            "models with open_clip's own text tower are supported"
        )
    for key in data:
        if key not in ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu", *_TOP_IGNORED):
            raise ConfigError(f"{name}: CLIP option {key} is not supported")
    quick = data.get("quick_gelu", False)
    if not isinstance(quick, bool):
        raise ConfigError(f"{name}: quick_gelu must be true or false, got {quick!r}")
    if isinstance(vis.get("layers"), list | tuple):
        raise ConfigError(f"{name}: vision_cfg.layers={vis['layers']} (a ResNet) is not supported")
    _check_options(
        name,
        "vision_cfg",
        vis,
        {
            "image_size",
            "patch_size",
            "width",
            "layers",
            "head_width",
            "mlp_ratio",
            "ls_init_value",
            "no_ln_pre",
        },
        _VISION_FIXED,
        _VISION_FREE,
    )
    _check_options(
        name,
        "text_cfg",
        txt,
        {
            "context_length",
            "vocab_size",
            "width",
            "heads",
            "layers",
            "mlp_ratio",
            "ls_init_value",
            "proj_bias",
        },
        _TEXT_FIXED,
        _TEXT_FREE,
    )
    embed_dim = _number(name, "embed_dim", data["embed_dim"], int)
    size = image_size if image_size is not None else vis.get("image_size", 224)
    width = _number(name, "vision_cfg.width", vis.get("width", 768), int)
    head_width = _number(name, "vision_cfg.head_width", vis.get("head_width", 64), int)
    if isinstance(size, list | tuple) or width % head_width:
        raise ConfigError(
            f"{name}: need a square image_size and width divisible by head_width, "
            f"got {size!r}, {width}, {head_width}"
        )
    vision = VisionSpec(
        image_size=_number(name, "image_size", size, int),
        patch_size=_number(name, "vision_cfg.patch_size", vis.get("patch_size", 16), int),
        width=width,
        layers=_number(name, "vision_cfg.layers", vis.get("layers", 12), int),
        heads=width // head_width,
        mlp_ratio=_number(name, "vision_cfg.mlp_ratio", vis.get("mlp_ratio", 4.0), float, 0),
        ls_init_value=_optional_float(name, "vision_cfg", vis.get("ls_init_value")),
        ln_pre=not bool(vis.get("no_ln_pre", False)),
        output_dim=embed_dim,
        quick_gelu=quick,
    )
    ctx = context_length if context_length is not None else txt.get("context_length", 77)
    proj_bias = txt.get("proj_bias", False)
    text = TextSpec(
        context_length=_number(name, "context_length", ctx, int),
        vocab_size=_number(name, "text_cfg.vocab_size", txt.get("vocab_size", 49408), int),
        width=_number(name, "text_cfg.width", txt.get("width", 512), int),
        layers=_number(name, "text_cfg.layers", txt.get("layers", 12), int),
        heads=_number(name, "text_cfg.heads", txt.get("heads", 8), int),
        mlp_ratio=_number(name, "text_cfg.mlp_ratio", txt.get("mlp_ratio", 4.0), float, 0),
        ls_init_value=_optional_float(name, "text_cfg", txt.get("ls_init_value")),
        output_dim=None if txt.get("proj_type", "linear") == "none" else embed_dim,
        proj_bias=bool(proj_bias),
        quick_gelu=quick,
    )
    if vision.image_size < vision.patch_size or text.width % text.heads:
        raise ConfigError(
            f"{name}: image_size {vision.image_size} < patch_size "
            f"{vision.patch_size}, or text width {text.width} not divisible by "
            f"heads {text.heads}"
        )
    return ClipSpec(name, vision, text)


def _optional_float(name: str, tower: str, value: Any) -> float | None:
    if value is None:
        return None
    return _number(name, f"{tower}.ls_init_value", value, float, 0)
