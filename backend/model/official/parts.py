"""Parameter accounting and the freezing policy of the published-layout model (a mixin).

:class:`OfficialParts` is mixed into :class:`~backend.model.official.model.OfficialRS2SAM2`;
it needs the attributes that class builds (``union``, ``image_encoder``, ``config``,
``tokenizer``, ``grid_size``).
"""

from __future__ import annotations

from torch import nn

from ..bhfm import HieraAdapterBlock
from ..rs2sam_params import _ADAPTER_MARKERS, _UNUSED_PREFIXES, CLICK_PREFIXES

__all__ = ["INT8_FIRST_STAGE", "OfficialParts"]

INT8_FIRST_STAGE = 3
"""``int8`` quantises the MLP Linears of the Hiera blocks from this stage (1-based) on."""


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

    def int8_layers(self) -> list[str]:
        """The Linear layers ``precision="int8"`` quantises: Hiera's stage-3/4 block MLPs.

        Measured per part on ``official-large`` at the bench tile (``bench/int8_parts.py``,
        docs/benchmarks.md): these are 47 % of the forward's Linear FLOPs and keep mask IoU
        0.988 against fp32; stage 1 alone (3.5 % of the FLOPs, 144-wide layers at 65,536
        tokens, little int8 gain) drops it to 0.966, every encoder Linear to 0.955, and the
        stage-3 attention or BEiT-3 each cost as much error as they save time. Every other
        Linear (BEiT-3, stages 1-2, attention, adapters, heads, decoder) stays float32.
        """
        trunk = self.image_encoder.trunk
        first = int(trunk.stage_ends[INT8_FIRST_STAGE - 2]) + 1
        return [
            f"image_encoder.trunk.blocks.{i}.mlp.{name}"
            for i, block in enumerate(trunk.blocks)
            if i >= first
            for name, module in block.mlp.named_modules()
            if type(module) is nn.Linear
        ]

    def adapted_blocks(self) -> list[HieraAdapterBlock]:
        """The Hiera blocks with their adapters."""
        return [b for b in self.image_encoder.trunk.blocks if isinstance(b, HieraAdapterBlock)]
