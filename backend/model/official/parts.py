"""Parameter accounting and the freezing policy of the published-layout model (a mixin).

:class:`OfficialParts` is mixed into :class:`~backend.model.official.model.OfficialRS2SAM2`;
it needs the attributes that class builds (``union``, ``image_encoder``, ``config``,
``tokenizer``, ``grid_size``).
"""

from __future__ import annotations

from torch import nn

from ..bhfm import HieraAdapterBlock
from ..rs2sam_params import _ADAPTER_MARKERS, _UNUSED_PREFIXES, CLICK_PREFIXES

__all__ = ["OfficialParts"]


class OfficialParts:
    """Freezing, parameter counts and report lines of :class:`OfficialRS2SAM2`."""

    def apply_freezing(self) -> None:
        """Set ``requires_grad`` by the published policy.

        The image encoder is frozen except the adapters; BEiT-3, the heads, the prompt encoder
        and the mask decoder train. Heads whose outputs are never used (IoU / object-score
        heads, point/box prompts, no-mask embedding) are frozen.
        """
        for name, param in self.named_parameters():
            param.requires_grad_(not name.startswith(_UNUSED_PREFIXES))
        for name, param in self.image_encoder.named_parameters():
            if not any(m in f".{name}" for m in _ADAPTER_MARKERS):
                param.requires_grad_(False)

    def enable_click_prompts(self) -> None:
        """Make the point embeddings trainable (training with clicks; frozen otherwise)."""
        for name, param in self.named_parameters():
            if name.startswith(CLICK_PREFIXES):
                param.requires_grad_(True)

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The adapters of every Hiera block."""
        return [
            p for n, p in self.named_parameters() if any(m in f".{n}" for m in _ADAPTER_MARKERS)
        ]

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts by part.

        Returns:
            ``total``, ``trainable``, ``adapters``, ``union`` (BEiT-3), ``sam2`` (SAM 2 image
            encoder without adapters, prompt encoder, mask decoder, ``no_mem_embed``) and
            ``heads`` (MPG, projections, decoder text fusion, boundary head).
        """
        params = dict(self.named_parameters())
        adapters = sum(p.numel() for p in self.adapter_parameters())
        union = sum(p.numel() for p in self.union.parameters())
        sam = sum(
            p.numel()
            for n, p in params.items()
            if n.startswith(("image_encoder.", "sam_prompt_encoder.", "sam_mask_decoder."))
            or n == "no_mem_embed"
        )
        total = sum(p.numel() for p in params.values())
        return {
            "total": total,
            "trainable": sum(p.numel() for p in params.values() if p.requires_grad),
            "adapters": adapters,
            "union": union,
            "sam2": sam - adapters,
            "heads": total - union - sam,
        }

    def describe_encoders(self) -> str:
        """One line for reports: the union encoder."""
        c = self.config
        return f"BEiT-3 {c.beit3_layers}×{c.beit3_width} @{c.beit3_image_size} (g={self.grid_size})"

    def unknown_words(self, text: str) -> list[str]:
        """Words with a piece the vocabulary lacks.

        Such a piece becomes ``<unk>``, which the published code masks like padding, so the
        model never sees the word.
        """
        return self.tokenizer.unknown_words(text)

    def adapted_blocks(self) -> list[HieraAdapterBlock]:
        """The Hiera blocks with their adapters."""
        return [b for b in self.image_encoder.trunk.blocks if isinstance(b, HieraAdapterBlock)]
