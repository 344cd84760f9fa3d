"""RS2-SAM 2's parameter policy: what is frozen, the two learning-rate groups, the counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from .configs import ModelConfig

__all__ = ["ParamPolicy"]

# parameters whose outputs RS2-SAM 2 never uses (IoU / object-score heads, point and box
# prompts, the no-mask embedding): kept so official weights load, but frozen so they are not
# "unused parameters" under DDP and not in any optimiser group
_UNUSED_PREFIXES = (
    "sam_mask_decoder.iou_prediction_head.",
    "sam_mask_decoder.pred_obj_score_head.",
    "sam_prompt_encoder.point_embeddings.",
    "sam_prompt_encoder.not_a_point_embed.",
    "sam_prompt_encoder.no_mask_embed.",
)
_ADAPTER_MARKERS = (".Space_Adapter.", ".MLP_Adapter.")
# the click (point) embeddings: trained only by training with clicks (enable_click_prompts)
CLICK_PREFIXES = (
    "sam_prompt_encoder.point_embeddings.",
    "sam_prompt_encoder.not_a_point_embed.",
)


class ParamPolicy(nn.Module):
    """Freezing and parameter groups of :class:`~backend.model.rs2sam.RS2SAM2` (its base).

    The host module holds ``config`` (a ``ModelConfig``), ``image_encoder`` and ``union``.
    """

    config: ModelConfig
    image_encoder: nn.Module
    union: nn.Module

    def apply_freezing(self) -> None:
        """Set ``requires_grad`` from the config (called at build).

        * ``freeze_trunk``: the whole image encoder (Hiera trunk, position embeddings, FPN neck)
          is frozen except the BHFM adapters (the paper's policy).
        * ``freeze_clip``: the open_clip towers are frozen, except (design B) the ViT blocks
          that see text and ``ln_post``.
        * Always frozen: heads whose outputs are never used (IoU and object-score heads, point
          and box prompt embeddings, the no-mask embedding). With ``use_mpg_dense=False`` the
          no-mask embedding is the dense prompt (trainable) and the mask downscaling is unused
          (frozen).
        """
        unused = _UNUSED_PREFIXES
        if not self.config.use_mpg_dense:
            unused = tuple(p for p in unused if p != "sam_prompt_encoder.no_mask_embed.")
            unused += ("sam_prompt_encoder.mask_downscaling.",)
        for name, param in self.named_parameters():
            param.requires_grad_(True)
            if name.startswith(unused):
                param.requires_grad_(False)
        if self.config.freeze_trunk:
            for name, param in self.image_encoder.named_parameters():
                if not any(m in f".{name}" for m in _ADAPTER_MARKERS):
                    param.requires_grad_(False)
        if self.config.freeze_clip:
            for param in self.union.tower_parameters():
                param.requires_grad_(False)
            for param in getattr(self.union, "fused_parameters", list)():
                param.requires_grad_(True)

    def enable_click_prompts(self) -> None:
        """Make the point embeddings trainable (training with clicks; frozen otherwise)."""
        for name, param in self.named_parameters():
            if name.startswith(CLICK_PREFIXES):
                param.requires_grad_(True)

    def named_param_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Trainable parameters by learning-rate group, with names (see :meth:`param_groups`)."""
        tower = {id(p) for p in self.union.tower_parameters()}
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {"new": [], "base": []}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            is_new = (
                any(m in f".{name}" for m in _ADAPTER_MARKERS)
                or name.startswith(("mpg.", "text_fusion."))
                or (name.startswith("union.") and id(param) not in tower)
            )
            groups["new" if is_new else "base"].append((name, param))
        return groups

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters split into the paper's two learning-rate groups.

        Returns:
            ``{"new": [...], "base": [...]}``. ``new`` (lr 1e-4 in the paper): BHFM adapters,
            MPG, decoder text fusion, and the union encoder's fusion parts that CLIP lacks
            (design A's joint layers and class-token projections, design B's text projection).
            ``base`` (lr 5e-5): the CLIP towers, the sparse/text projections, the boundary
            head, the prompt encoder, the mask decoder, ``no_mem_embed`` (and the trunk when
            ``freeze_trunk`` is False). Frozen parameters are in neither.
        """
        return {k: [p for _, p in v] for k, v in self.named_param_groups().items()}

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The BHFM in-encoder adapters (Space and MLP adapters of every Hiera block)."""
        return [
            p for n, p in self.named_parameters() if any(m in f".{n}" for m in _ADAPTER_MARKERS)
        ]

    def parameter_counts(self) -> dict[str, int]:
        """``{"total", "trainable", "adapters"}`` parameter counts."""
        params = list(self.parameters())
        return {
            "total": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad),
            "adapters": sum(p.numel() for p in self.adapter_parameters()),
        }
