"""Named LGCE architectures (stdlib only: importable before torch, like ``configs``).

LGCE is the RRSIS / RefSegRS paper's model (Yuan et al., TGRS 2024): a LAVT-style Swin encoder
with pixel-word attention (PWAM) and a language gate after every stage, a language-guided
cross-scale enhancement (LGCE) of the shallowest multimodal features by the deepest ones, and a
LAVT-style convolutional decoder.

Registry (added to :func:`backend.model.configs.list_models`):

* ``lgce-tiny``: random-init toy for tests (128 px, well under a second per forward on a CPU).
* ``lgce-nano``: ≈14 M parameters at 256 px, trainable from scratch on a CPU (the size of
  RS2-SAM 2 ``nano``, for the equal-budget comparison).
* ``lgce-paper``: Swin-B (window 12) + BERT-base at 480², as in the paper; meant to be
  initialised from local pretrained Swin-B and BERT-base files.

Example:
    >>> from backend.model.configs import get_model_config
    >>> get_model_config("lgce-nano").architecture
    'lgce'
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import ConfigError
from ..config_registry import check_field_types, config_from_dict, register_model_config

__all__ = ["LGCE_LIMITS", "TOKENIZERS", "LGCEConfig", "lgce_configs"]

TOKENIZERS = ("clip-bpe", "wordpiece")
"""Text tokenisers: open_clip's bundled BPE (no files needed) or BERT's WordPiece, whose
vocabulary is stored inside the weights (a checkpoint never names a file)."""

LGCE_LIMITS: dict[str, tuple[float, float]] = {
    "image_size": (32, 2048),
    "patch_size": (2, 16),
    "embed_dim": (8, 1024),
    "window_size": (2, 32),
    "mlp_ratio": (0.5, 8.0),
    "drop_path_rate": (0.0, 0.9),
    "vocab_size": (16, 300_000),
    "vocab_token_bytes": (0, 64),
    "context_length": (3, 512),
    "text_width": (8, 4096),
    "text_layers": (1, 48),
    "text_heads": (1, 64),
    "text_trainable_layers": (-1, 48),
    "pwam_heads": (1, 64),
    "lgce_dim": (8, 4096),
    "lgce_heads": (1, 64),
    "decoder_dim": (8, 4096),
    "gsd_m": (0.01, 1000.0),
}
"""Inclusive bounds of the numeric fields (a checkpoint header is untrusted input)."""

_SEQ_LIMITS = {"depths": (1, 48), "num_heads": (1, 64)}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


@dataclass(frozen=True)
class LGCEConfig:
    """Architecture of one LGCE variant.

    Attributes:
        name: Registry key, e.g. ``"lgce-nano"``.
        image_size: Square input size ``S`` in pixels (multiple of 32). Stage ``i`` of the
            Swin encoder works at ``S / (patch_size * 2**i)``; the logits come from ``S / 4``.
        patch_size: Swin patch size (4 in the paper).
        embed_dim: Width ``C`` of the first Swin stage (stage ``i`` has ``C * 2**i``).
        depths: Swin blocks per stage (4 stages).
        num_heads: Attention heads per stage.
        window_size: Swin window (12 for the paper's Swin-B at 480²).
        mlp_ratio: Swin MLP width ratio.
        drop_path_rate: Stochastic depth of the Swin blocks (0.3 in LAVT's Swin-B).
        tokenizer: ``"clip-bpe"`` or ``"wordpiece"`` (see :data:`TOKENIZERS`).
        vocab_size: Rows of the token table (49408 for clip-bpe, 30522 for BERT-base).
        vocab_token_bytes: WordPiece only: bytes per vocabulary entry of the vocabulary table
            stored with the weights (0 for clip-bpe).
        context_length: Text tokens per caption (longer captions are truncated with a warning).
        text_width: Hidden width of the BERT-style encoder (768 for BERT-base).
        text_layers: Its transformer layers (12 for BERT-base).
        text_heads: Its attention heads.
        text_trainable_layers: ``-1`` trains the whole text encoder; ``k >= 0`` freezes the
            embeddings and every layer from ``k`` on (the official recipe optimises only the
            first 10 BERT layers).
        pwam_heads: Heads of each pixel-word attention (1 in LAVT).
        lgce_dim: Width of the cross-scale attention of the LGCE module.
        lgce_heads: Its heads.
        decoder_dim: Hidden width of the decoder (LAVT: half the last stage's width).
        use_lgce: Ablation switch: False feeds the stage-1 features to the decoder unenhanced
            (plain LAVT).
        gsd_m: Working ground resolution in metres per pixel, or None for a raster's native.
        description: One line for model pickers.
    """

    architecture: ClassVar[str] = "lgce"

    name: str
    image_size: int
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    text_width: int
    text_layers: int
    text_heads: int
    patch_size: int = 4
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    tokenizer: str = "clip-bpe"
    vocab_size: int = 49408
    vocab_token_bytes: int = 0
    context_length: int = 32
    text_trainable_layers: int = -1
    pwam_heads: int = 1
    lgce_dim: int = 64
    lgce_heads: int = 2
    decoder_dim: int = 64
    use_lgce: bool = True
    gsd_m: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ConfigError(f"LGCEConfig.name must be a plain name, got {self.name!r}")
        # JSON gives lists: store tuples so the config stays hashable and frozen
        for key in _SEQ_LIMITS:
            value = getattr(self, key)
            if isinstance(value, list):
                object.__setattr__(self, key, tuple(value))
        self._check_types_and_bounds()
        n = self.name
        if self.image_size % 32:
            raise ConfigError(f"{n}: image_size must be a multiple of 32, got {self.image_size}")
        if len(self.depths) != 4 or len(self.num_heads) != 4:
            raise ConfigError(
                f"{n}: depths and num_heads need 4 entries (one per Swin stage), got "
                f"{list(self.depths)} and {list(self.num_heads)}"
            )
        for i, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2**i) % heads:
                raise ConfigError(
                    f"{n}: num_heads[{i}]={heads} must divide stage width {self.embed_dim * 2**i}"
                )
        if self.image_size % (self.patch_size * 8):
            raise ConfigError(
                f"{n}: image_size {self.image_size} must be a multiple of 8 * patch_size "
                f"({8 * self.patch_size}) so every Swin stage has whole pixels"
            )
        for width, heads, what in (
            (self.text_width, self.text_heads, "text"),
            (self.lgce_dim, self.lgce_heads, "lgce"),
            (self.embed_dim, self.pwam_heads, "pwam"),
        ):
            if width % heads:
                raise ConfigError(f"{n}: {what}_heads={heads} must divide the width {width}")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"{n}: tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        if self.tokenizer == "wordpiece" and self.vocab_token_bytes < 8:
            raise ConfigError(
                f"{n}: a wordpiece tokenizer needs vocab_token_bytes >= 8, "
                f"got {self.vocab_token_bytes}"
            )
        if self.text_trainable_layers > self.text_layers:
            raise ConfigError(
                f"{n}: text_trainable_layers={self.text_trainable_layers} exceeds text_layers="
                f"{self.text_layers} (-1 trains all)"
            )
        if self.gsd_m is not None and self.gsd_m <= 0:
            raise ConfigError(f"{n}: gsd_m must be > 0 or None, got {self.gsd_m}")

    def _check_types_and_bounds(self) -> None:
        """Sequence fields against ``_SEQ_LIMITS``, the rest by the shared field check."""
        for key, (lo, hi) in _SEQ_LIMITS.items():
            value = getattr(self, key)
            ok = isinstance(value, tuple) and all(
                isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi for v in value
            )
            if not ok:
                raise ConfigError(
                    f"{self.name}: {key} must be a list of ints in [{lo}, {hi}], got {value!r}"
                )

        check_field_types(self, LGCE_LIMITS, skip=_SEQ_LIMITS)

    @property
    def stage_dims(self) -> tuple[int, int, int, int]:
        """Widths of the four Swin stages."""
        c = self.embed_dim
        return (c, 2 * c, 4 * c, 8 * c)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (stored in checkpoints)."""
        out = dataclasses.asdict(self)
        out["depths"] = list(self.depths)
        out["num_heads"] = list(self.num_heads)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LGCEConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: If a key is unknown or a required one is missing.
        """
        return config_from_dict(cls, data)


def lgce_configs() -> list[LGCEConfig]:
    """The named LGCE configs (registered when this module is imported)."""
    return [
        LGCEConfig(
            name="lgce-tiny",
            image_size=64,
            embed_dim=16,
            depths=(2, 2, 1, 1),  # stages 1-2 have a shifted-window block (with a mask)
            num_heads=(1, 2, 2, 4),
            window_size=4,
            text_width=32,
            text_layers=1,
            text_heads=2,
            drop_path_rate=0.0,
            context_length=16,
            lgce_dim=16,
            lgce_heads=2,
            decoder_dim=16,
            description="Random-init LGCE toy for tests (64 px)",
        ),
        LGCEConfig(
            name="lgce-nano",
            image_size=256,
            embed_dim=48,
            depths=(2, 2, 4, 2),
            num_heads=(2, 4, 8, 16),
            window_size=8,
            text_width=96,  # the width of RS2-SAM 2 nano's CLIP text tower
            text_layers=3,
            text_heads=2,
            drop_path_rate=0.1,
            context_length=32,
            lgce_dim=96,
            lgce_heads=4,
            decoder_dim=64,
            gsd_m=0.3,
            description="LGCE trainable from scratch on a CPU (256 px, ≈14 M parameters)",
        ),
        LGCEConfig(
            name="lgce-paper",
            image_size=480,
            embed_dim=128,
            depths=(2, 2, 18, 2),
            num_heads=(4, 8, 16, 32),
            window_size=12,
            text_width=768,
            text_layers=12,
            text_heads=12,
            drop_path_rate=0.3,
            tokenizer="wordpiece",
            vocab_size=30522,
            vocab_token_bytes=32,
            context_length=20,
            text_trainable_layers=10,
            lgce_dim=256,
            lgce_heads=8,
            decoder_dim=512,
            gsd_m=0.5,
            description="Paper scale: Swin-B (window 12) + BERT-base at 480², local init files",
        ),
    ]


for _config in lgce_configs():
    register_model_config(_config)
