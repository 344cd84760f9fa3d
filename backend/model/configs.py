"""Named RS2-SAM 2 architectures (a config describes an architecture and holds no weights).

This module is stdlib-only, so the plugin can list models before torch is loaded. The registry
functions and the stored-config checks shared by all architectures are in ``config_registry``.

Registry (see :func:`list_models`):

* ``test-tiny``: random-init toy (≈2.4 M parameters, 128 px) that every CPU test builds.
* ``nano``: ≈14 M parameters at 256 px, small enough to train from scratch on a CPU;
  its Hiera trunk is trainable (``freeze_trunk=False``) because no pretrained weights fit it.
* ``base``: SAM 2.1 Hiera-S at 1024 px with an open_clip ViT-B-16 union encoder (one GPU).
* ``large``: SAM 2.1 Hiera-L at 1024 px with ViT-L-14, paper scale (≈30 M adapter parameters).
* ``official-large`` / ``official-tiny``: the published RS2-SAM 2 module layout (BEiT-3 +
  SAM 2.0 Hiera-L, architecture ``rs2sam2-official``; see :mod:`backend.model.official`).

The same registry also holds the other architectures' named configs (``official-*``, ``lgce-*``):
each architecture's config module registers its own when imported, and the registry imports the
config module of every architecture in :mod:`backend.model.architectures` before it answers. A
config's class attribute ``architecture`` says which architecture it belongs to.

Example:
    >>> from backend.model.configs import get_model_config, list_models
    >>> list_models()
    ['base', 'large', 'lgce-nano', 'lgce-paper', 'lgce-tiny', 'nano', 'official-large',
     'official-tiny', 'test-tiny']
    >>> get_model_config("nano", image_size=320).image_size
    320
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError
from .config_registry import (
    check_field_types,
    config_from_dict,
    get_model_config,
    list_models,
    register_model_config,
)
from .sam2_archs import SAM2_ARCHS

__all__ = [
    "LIMITS",
    "NOMINAL_SECONDS_PER_TILE",
    "SAM2_ARCHS",
    "UNION_ENCODERS",
    "ModelConfig",
    "check_field_types",
    "config_from_dict",
    "get_model_config",
    "list_models",
    "register_model_config",
]

UNION_ENCODERS = ("twotower", "earlyfusion")
"""Union-encoder designs of model_spec §9.3 (A, ``twotower``) and §9.4 (B, ``earlyfusion``)."""

LIMITS: dict[str, tuple[float, float]] = {
    "image_size": (32, 2048),
    "clip_image_size": (16, 1024),
    "context_length": (3, 512),
    "fusion_dim": (8, 4096),
    "joint_layers": (0, 32),
    "early_fusion_blocks": (0, 64),
    "fusion_heads": (0, 64),
    "mpg_heads": (1, 64),
    "text_fusion_heads": (1, 64),
    "adapter_ratio": (0.01, 4.0),
    "adapter_heads": (1, 64),
    "mlp_adapter_scale": (0.0, 10.0),
    "gsd_m": (0.01, 1000.0),
}
"""Inclusive bounds of the numeric fields: a checkpoint header is untrusted input, and sizes
outside these ranges (the largest real model, paper scale, is well inside) are refused before
anything is built or allocated."""

NOMINAL_SECONDS_PER_TILE: dict[tuple[str, str], float] = {
    ("test-tiny", "cpu"): 0.006,
    ("nano", "cpu"): 0.039,
    ("base", "cpu"): 3.03,
    ("large", "cpu"): 13.7,
    ("large", "cuda"): 0.121,
}
"""Measured model time per tile at the config's ``image_size`` (batch 1): CPU on the 2-core
reference VM (docs/model.md), CUDA on one H200 (bf16). Used to estimate a run's duration before
it starts; configs missing here have no estimate."""

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one RS2-SAM 2 variant.

    Attributes:
        name: Registry key, e.g. ``"nano"``.
        sam2_yaml: SAM 2 model YAML. A bare file name is looked up in
            ``backend/model/sam2_yaml/``; ``"sam2:configs/sam2.1/sam2.1_hiera_l.yaml"`` names a
            file inside the installed ``sam2`` package.
        image_size: Square SAM input size in pixels (multiple of 32). Feature maps are
            ``image_size / 4, / 8, / 16``; the low-res mask is ``image_size / 4``.
        clip_model: open_clip model name (built-in, or one of our JSONs in
            ``backend/model/open_clip_configs/``).
        clip_image_size: Square input size of the CLIP vision tower in pixels; the
            pseudo-mask grid is ``clip_image_size / patch_size``.
        context_length: Text tokens per caption (longer captions are truncated with a warning).
        union_encoder: ``"twotower"`` (design A: two CLIP towers + ``joint_layers`` joint
            transformer layers) or ``"earlyfusion"`` (design B: text tokens join the last
            ``early_fusion_blocks`` blocks of the CLIP vision transformer).
        fusion_dim: Width ``d`` of design A's joint layers (design B uses the ViT width).
        joint_layers: K, number of joint fusion layers (design A).
        early_fusion_blocks: Number of final ViT blocks that see the text (design B).
        fusion_heads: Attention heads of design A's joint layers (0 = ``fusion_dim // 64``).
        mpg_heads: Heads of the mask prompt generator's attention.
        text_fusion_heads: Heads of the multiplicative text fusion before the mask decoder.
        adapter_ratio: BHFM adapter hidden size as a fraction of the Hiera block width.
        adapter_heads: Heads of the BHFM cross-attentions.
        text_update_alpha: Text-state update rate in every Hiera block (``T ← (1-α)T + α·out``).
        mlp_adapter_scale: Scale of the MLP adapter output added next to the block's MLP.
        freeze_trunk: Freeze the Hiera trunk and FPN neck except the adapters (the paper's
            policy for pretrained SAM 2). False trains the whole image encoder (``nano``).
        freeze_clip: Freeze the CLIP towers (design A's fusion layers stay trainable; in
            design B the text-seeing ViT blocks stay trainable).
        gsd_m: Working ground resolution in metres per pixel the model is meant to see, or
            None to use a raster's native resolution.
        description: One line for model pickers.
        use_bhfm: Ablation switch. False builds plain Hiera blocks (no Space/MLP adapters,
            no text inside the image encoder); the decoder text fusion is kept.
        use_mpg_dense: Ablation switch. False drops the mask prompt generator: the dense
            prompt is SAM's (then trainable) ``no_mask_embed``; the sparse class token stays.
    """

    architecture: ClassVar[str] = "rs2sam2"

    name: str
    sam2_yaml: str
    image_size: int
    clip_model: str
    clip_image_size: int
    context_length: int = 77
    union_encoder: str = "twotower"
    fusion_dim: int = 256
    joint_layers: int = 2
    early_fusion_blocks: int = 2
    fusion_heads: int = 0
    mpg_heads: int = 8
    text_fusion_heads: int = 8
    adapter_ratio: float = 0.25
    adapter_heads: int = 4
    text_update_alpha: float = 0.2
    mlp_adapter_scale: float = 0.5
    freeze_trunk: bool = True
    freeze_clip: bool = False
    gsd_m: float | None = None
    description: str = ""
    use_bhfm: bool = True
    use_mpg_dense: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("ModelConfig.name must be a non-empty string")
        self._check_types_and_bounds()
        if self.image_size < 32 or self.image_size % 32:
            raise ConfigError(
                f"{self.name}: image_size must be a positive multiple of 32, got {self.image_size}"
            )
        if self.clip_image_size < 16:
            raise ConfigError(
                f"{self.name}: clip_image_size must be >= 16, got {self.clip_image_size}"
            )
        if self.union_encoder not in UNION_ENCODERS:
            raise ConfigError(
                f"{self.name}: union_encoder must be one of {UNION_ENCODERS}, "
                f"got {self.union_encoder!r}"
            )
        if self.context_length < 3:
            raise ConfigError(
                f"{self.name}: context_length must be >= 3 (SOT, a word, EOT), "
                f"got {self.context_length}"
            )
        if self.union_encoder == "twotower" and self.joint_layers < 1:
            raise ConfigError(f"{self.name}: joint_layers must be >= 1, got {self.joint_layers}")
        if self.union_encoder == "earlyfusion" and self.early_fusion_blocks < 1:
            raise ConfigError(
                f"{self.name}: early_fusion_blocks must be >= 1, got {self.early_fusion_blocks}"
            )
        if not 0.0 <= self.text_update_alpha <= 1.0:
            raise ConfigError(
                f"{self.name}: text_update_alpha must be in [0, 1], got {self.text_update_alpha}"
            )
        if self.gsd_m is not None and self.gsd_m <= 0:
            raise ConfigError(f"{self.name}: gsd_m must be > 0 or None, got {self.gsd_m}")

    def _check_types_and_bounds(self) -> None:
        """Types of every field and :data:`LIMITS`; registered SAM 2 / open_clip names only."""
        check_field_types(self, LIMITS)
        if self.sam2_yaml not in SAM2_ARCHS:
            raise ConfigError(
                f"{self.name}: unknown SAM 2 architecture {self.sam2_yaml[:80]!r}; known: "
                f"{', '.join(sorted(SAM2_ARCHS))} (a checkpoint names one, never a file)"
            )
        if not _NAME_RE.fullmatch(self.clip_model):
            raise ConfigError(
                f"{self.name}: clip_model {self.clip_model[:80]!r} is not a plain open_clip model "
                "name (hub and local-dir references are not allowed in a config)"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (stored in checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: If a key is unknown or a required one is missing.
        """
        return config_from_dict(cls, data)


register_model_config(
    ModelConfig(
        name="test-tiny",
        sam2_yaml="test_tiny.yaml",
        image_size=128,
        clip_model="rs2sam-tiny-clip",
        clip_image_size=64,
        context_length=16,
        union_encoder="twotower",
        fusion_dim=32,
        joint_layers=1,
        early_fusion_blocks=1,
        fusion_heads=2,
        mpg_heads=4,
        text_fusion_heads=4,
        freeze_trunk=True,
        gsd_m=None,
        description="Random-init toy for tests (128 px, ≈2.4 M parameters)",
    )
)
register_model_config(
    ModelConfig(
        name="nano",
        sam2_yaml="nano.yaml",
        image_size=256,
        clip_model="rs2sam-nano-clip",
        clip_image_size=256,
        context_length=32,
        union_encoder="twotower",
        fusion_dim=128,
        joint_layers=2,
        early_fusion_blocks=2,
        fusion_heads=4,
        mpg_heads=8,
        text_fusion_heads=8,
        freeze_trunk=False,  # no pretrained Hiera this small: train the trunk from scratch
        freeze_clip=False,
        gsd_m=0.3,
        description="CPU-trainable from scratch (256 px, ≈14 M parameters, 16×16 prompt grid)",
    )
)
register_model_config(
    ModelConfig(
        name="base",
        sam2_yaml="sam2:configs/sam2.1/sam2.1_hiera_s.yaml",
        image_size=1024,
        clip_model="ViT-B-16",
        clip_image_size=224,
        context_length=77,
        union_encoder="twotower",
        fusion_dim=768,
        joint_layers=2,
        early_fusion_blocks=6,
        freeze_trunk=True,
        gsd_m=0.5,
        description="SAM 2.1 Hiera-S @1024 + open_clip ViT-B-16 (one GPU)",
    )
)
register_model_config(
    ModelConfig(
        name="large",
        sam2_yaml="sam2:configs/sam2.1/sam2.1_hiera_l.yaml",
        image_size=1024,
        clip_model="ViT-L-14",
        clip_image_size=224,
        context_length=77,
        union_encoder="earlyfusion",
        fusion_dim=1024,
        joint_layers=4,
        early_fusion_blocks=8,
        freeze_trunk=True,
        gsd_m=0.5,
        description="Paper scale: SAM 2.1 Hiera-L @1024 + open_clip ViT-L-14 (early fusion)",
    )
)
