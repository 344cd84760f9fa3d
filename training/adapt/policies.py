"""What an adaptation trains, per model architecture (a registry: architectures plug in here).

* RS2-SAM 2 configs trained from scratch (``nano``, ``test-tiny``: ``freeze_trunk`` off):
  everything the config trains.
* RS2-SAM 2 configs on pretrained SAM 2 (``base``, ``large``) and the published layout
  (``rs2sam2-official``): the in-encoder adapters and the mask decoder, as the paper trains
  them on top of frozen foundations.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from backend.errors import CheckpointError

__all__ = ["POLICIES", "trainable_parameters"]

PolicyFn = Callable[[nn.Module], tuple[str, list[nn.Parameter]]]


def _adapters_and_decoder(model: nn.Module) -> tuple[str, list[nn.Parameter]]:
    chosen = {id(p): p for p in model.adapter_parameters()}  # type: ignore[operator]
    for name, param in model.named_parameters():
        if name.startswith("sam_mask_decoder.") and param.requires_grad:
            chosen[id(param)] = param
    return "adapters + mask decoder", list(chosen.values())


def _rs2sam2(model: nn.Module) -> tuple[str, list[nn.Parameter]]:
    if getattr(model.config, "freeze_trunk", True):
        return _adapters_and_decoder(model)
    return "all trained parts", [p for p in model.parameters() if p.requires_grad]


POLICIES: dict[str, PolicyFn] = {
    "rs2sam2": _rs2sam2,
    "rs2sam2-official": _adapters_and_decoder,
}
"""Architecture name -> ``policy(model) -> (description, parameters to train)``."""


def trainable_parameters(model: nn.Module, architecture: str) -> tuple[str, list[nn.Parameter]]:
    """The parameters an adaptation of ``model`` trains; the others are frozen in place.

    Raises:
        CheckpointError: No adaptation is defined for the architecture.
    """
    policy = POLICIES.get(architecture)
    if policy is None:
        raise CheckpointError(
            f"the base model is of architecture {architecture!r}, which cannot be adapted; "
            f"use a checkpoint of {', '.join(sorted(POLICIES))} (e.g. the bundled weights)"
        )
    what, params = policy(model)
    keep = {id(p) for p in params}
    for param in model.parameters():
        param.requires_grad_(id(param) in keep)
    return what, params
