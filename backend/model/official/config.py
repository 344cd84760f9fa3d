"""Config of the published RS2-SAM 2 layout, and its registry entries (stdlib only).

Sizes of the release (model_spec §1.3, §1.5, §8): BEiT-3 large (24 layers, width 1024, 16 heads,
FFN 4096, patch 16 at 224 px, 64,010 text-embedding rows, 1,024 text positions) and SAM 2.0
Hiera-L at 1024 px. The heads' widths (adapters 4, MPG 8, decoder fusion 8), the adapter ratio
(1/4), the text update rate (0.2) and the MLP-adapter scale (0.5) are fixed in the published code.

Example:
    >>> from backend.model.configs import get_model_config
    >>> get_model_config("official-large").beit3_layers
    24
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import ConfigError
from ..config_registry import check_field_types, config_from_dict, register_model_config
from ..sam2_archs import SAM2_ARCHS

__all__ = ["OFFICIAL_LIMITS", "OfficialConfig"]

OFFICIAL_LIMITS: dict[str, tuple[float, float]] = {
    "image_size": (32, 2048),
    "beit3_image_size": (16, 1024),
    "beit3_patch_size": (2, 64),
    "beit3_layers": (1, 64),
    "beit3_width": (8, 4096),
    "beit3_heads": (1, 64),
    "beit3_ffn": (8, 16384),
    "vocab_size": (8, 300_000),
    "text_positions": (5, 8192),
    "adapter_ratio": (0.01, 4.0),
    "adapter_heads": (1, 64),
    "mpg_heads": (1, 64),
    "text_fusion_heads": (1, 64),
    "text_update_alpha": (0.0, 1.0),
    "mlp_adapter_scale": (0.0, 10.0),
    "layernorm_eps": (1e-12, 1e-2),
    "tokenizer_bytes": (0, 64 * 1024**2),
    "gsd_m": (0.01, 1000.0),
}
"""Inclusive bounds of the numeric fields (a checkpoint header is untrusted input)."""


@dataclass(frozen=True)
class OfficialConfig:
    """Architecture of the published RS2-SAM 2 module layout.

    Attributes:
        name: Registry key (``"official-large"`` for the release).
        sam2_yaml: Registered SAM 2 description (a key of ``SAM2_ARCHS``; SAM 2.0 Hiera-L for
            the release: window sizes and global-attention blocks are not in the weights).
        image_size: Square SAM input size in pixels (1024 in the published test path).
        beit3_image_size: Square BEiT-3 input size (224); the pseudo-mask grid is
            ``beit3_image_size / beit3_patch_size`` (14).
        beit3_patch_size: BEiT-3 patch size in pixels.
        beit3_layers: BEiT-3 encoder layers.
        beit3_width: BEiT-3 width ``d``.
        beit3_heads: BEiT-3 attention heads (64-wide heads in every published BEiT-3).
        beit3_ffn: BEiT-3 FFN width.
        vocab_size: Rows of BEiT-3's text embedding (64,010; the tokeniser uses fewer).
        text_positions: Rows of BEiT-3's text position table; positions start at 2, so a
            caption holds at most ``text_positions - 2`` tokens with ``<s>`` and ``</s>``.
        adapter_ratio: Adapter width as a fraction of the Hiera block width.
        adapter_heads: Heads of the adapters' two cross-attentions.
        mpg_heads: Heads of the mask prompt generator's attention.
        text_fusion_heads: Heads of the multiplicative text fusion before the mask decoder.
        text_update_alpha: Text-state update rate in every Hiera block.
        mlp_adapter_scale: Scale of the MLP adapter next to each block's MLP.
        layernorm_eps: BEiT-3 LayerNorm epsilon (torchscale's default).
        tokenizer_bytes: Size of the sentencepiece model the checkpoint carries (buffer
            ``tokenizer_model``); 0 in the registry: a random-init build trains a toy one.
        gsd_m: Working ground resolution in m/px (see docs/model.md for the choice).
        description: One line for model pickers.
    """

    architecture: ClassVar[str] = "rs2sam2-official"

    name: str
    sam2_yaml: str
    image_size: int = 1024
    beit3_image_size: int = 224
    beit3_patch_size: int = 16
    beit3_layers: int = 24
    beit3_width: int = 1024
    beit3_heads: int = 16
    beit3_ffn: int = 4096
    vocab_size: int = 64010
    text_positions: int = 1024
    adapter_ratio: float = 0.25
    adapter_heads: int = 4
    mpg_heads: int = 8
    text_fusion_heads: int = 8
    text_update_alpha: float = 0.2
    mlp_adapter_scale: float = 0.5
    layernorm_eps: float = 1e-5
    tokenizer_bytes: int = 0
    gsd_m: float | None = 0.5
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("OfficialConfig.name must be a non-empty string")
        check_field_types(self, OFFICIAL_LIMITS)
        if self.sam2_yaml not in SAM2_ARCHS:
            raise ConfigError(
                f"{self.name}: unknown SAM 2 architecture {self.sam2_yaml[:80]!r}; known: "
                f"{', '.join(sorted(SAM2_ARCHS))} (a checkpoint names one, never a file)"
            )
        if self.image_size % 32:
            raise ConfigError(
                f"{self.name}: image_size must be a multiple of 32, got {self.image_size}"
            )
        if self.beit3_image_size % self.beit3_patch_size:
            raise ConfigError(
                f"{self.name}: beit3_image_size {self.beit3_image_size} must be a multiple of "
                f"beit3_patch_size {self.beit3_patch_size}"
            )
        for field, heads in (("beit3_heads", self.beit3_heads), ("mpg_heads", self.mpg_heads)):
            if self.beit3_width % heads:
                raise ConfigError(
                    f"{self.name}: {field}={heads} must divide beit3_width {self.beit3_width}"
                )
        if self.gsd_m is not None and self.gsd_m <= 0:
            raise ConfigError(f"{self.name}: gsd_m must be > 0 or None, got {self.gsd_m}")

    @property
    def grid(self) -> int:
        """Side of BEiT-3's patch grid (the pseudo-mask grid)."""
        return self.beit3_image_size // self.beit3_patch_size

    @property
    def max_text_tokens(self) -> int:
        """Tokens per caption including ``<s>`` and ``</s>`` (longer ones are truncated)."""
        return self.text_positions - 2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (stored in checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OfficialConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: If a key is unknown or a required one is missing.
        """
        return config_from_dict(cls, data)


OFFICIAL_LARGE = register_model_config(
    OfficialConfig(
        name="official-large",
        sam2_yaml="sam2:configs/sam2/sam2_hiera_l.yaml",
        gsd_m=0.5,
        description="Published RS2-SAM 2: BEiT-3-L @224 + SAM 2.0 Hiera-L @1024 (import-official)",
    )
)
OFFICIAL_TINY = register_model_config(
    OfficialConfig(
        name="official-tiny",
        sam2_yaml="test_tiny.yaml",
        image_size=128,
        beit3_image_size=64,
        beit3_patch_size=16,
        beit3_layers=2,
        beit3_width=64,
        beit3_heads=1,
        beit3_ffn=128,
        vocab_size=512,
        text_positions=34,
        gsd_m=None,
        description="Random-init toy in the published module layout (tests)",
    )
)
