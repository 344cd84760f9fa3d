"""Initialise parts of a model from official SAM 2 / 2.1 and open_clip weight files."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .state_io import LoadReport, _check_file, _compare, _is_pickle

logger = logging.getLogger(__name__)

__all__ = ["init_rs2sam2_pretrained", "load_open_clip_weights", "load_sam2_weights"]

_SAM_PREFIXES = ("image_encoder.", "sam_prompt_encoder.", "sam_mask_decoder.", "no_mem_embed")
# official SAM 2 modules for video / memory that RS2-SAM 2 does not build
_SAM_UNUSED_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
    "mask_downsample.",
    "no_obj_embed_spatial",
)
_ADAPTER_MARKERS = (".Space_Adapter.", ".MLP_Adapter.")
_CLIP_TEXT_KEYS = (
    "token_embedding.",
    "positional_embedding",
    "transformer.",
    "ln_final.",
    "text_projection",
)
_CLIP_UNUSED_KEYS = ("logit_scale", "logit_bias", "attn_mask")


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` or safetensors, with CheckpointErrors."""
    _check_file(path)
    if not _is_pickle(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{path} is neither a torch file nor safetensors ({err})"
            ) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} could not be read with torch.load(weights_only=True) ({type(err).__name__}: "
            f"{str(err)[:300]}); only plain tensor files are accepted, never arbitrary pickles"
        ) from None


def _as_state(obj: Any, path: Path, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    for key in keys:
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path} does not hold a state dict of tensors (looked under {list(keys)})"
        )
    return {str(k).removeprefix("module.").removeprefix("_orig_mod."): v for k, v in obj.items()}


def _source_state(
    weights: str | os.PathLike[str] | Mapping[str, Any], keys: tuple[str, ...]
) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(weights, Mapping):
        return _as_state(weights, Path("<state dict>"), keys), "state dict"
    path = Path(weights)
    return _as_state(_torch_load(path), path, keys), str(path)


def load_sam2_weights(
    model: nn.Module,
    weights: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: bool = True,
) -> LoadReport:
    """Initialise the SAM 2 parts of ``model`` from an official SAM 2 / 2.1 checkpoint.

    Keys map one-to-one (``image_encoder.*``, ``sam_prompt_encoder.*``,
    ``sam_mask_decoder.*``, ``no_mem_embed``); the BHFM adapters stay fresh and the video /
    memory modules of the file are ignored. Works at any model image size (Hiera's position
    embeddings are interpolated at run time).

    Args:
        model: An ``RS2SAM2``.
        weights: Path to ``sam2*.pt`` (tensors under ``"model"``, read with
            ``torch.load(weights_only=True)``) or ``.safetensors``, or an already loaded dict.
        strict: Raise if a SAM 2 key is missing, mis-shaped or unexpected.

    Returns:
        The :class:`LoadReport`.

    Raises:
        CheckpointError: Unreadable or unsafe file, or (``strict``) a mismatch.
    """
    state, source = _source_state(weights, ("model",))
    model_state = {
        k: v
        for k, v in model.state_dict().items()
        if k.startswith(_SAM_PREFIXES) and not any(m in f".{k}" for m in _ADAPTER_MARKERS)
    }
    ignored = {k: v for k, v in state.items() if k.startswith(_SAM_UNUSED_PREFIXES)}
    wanted = {k: v for k, v in state.items() if k not in ignored}
    report = _compare(model_state, wanted, source)
    report.ignored = sorted(ignored)
    if strict and not report.ok:
        raise CheckpointError(f"SAM 2 weights do not fit {model.config.name}:\n{report.format()}")
    _copy_in(model, {k: wanted[k] for k in report.loaded})
    logger.info("SAM 2 init: %s", report.format())
    return report


def load_open_clip_weights(
    model: nn.Module,
    weights: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: bool = True,
) -> LoadReport:
    """Initialise the union encoder's CLIP towers from an open_clip weight file.

    ``visual.*`` maps to ``union.visual.*`` and the text tower (``token_embedding``,
    ``positional_embedding``, ``transformer``, ``ln_final``, ``text_projection``, or
    ``text.*`` for custom-text models) to ``union.text.*``. The vision position embedding is
    resized to the model's CLIP grid (open_clip's bicubic ``resize_pos_embed``); a longer text
    position table is cut to the model's context length (exact for CLIP's causal text tower).

    Args:
        model: An ``RS2SAM2``.
        weights: Path to an open_clip ``.safetensors`` / ``.bin`` / ``.pt`` file (plain state
            dict or under ``"state_dict"``), or an already loaded dict.
        strict: Raise if a tower key is missing, mis-shaped or unexpected.

    Returns:
        The :class:`LoadReport`.

    Raises:
        CheckpointError: Unreadable or unsafe file, or (``strict``) a mismatch.
    """
    from .clip_towers import resize_position_table

    state, source = _source_state(weights, ("state_dict", "model"))
    mapped: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in state.items():
        if key.startswith("visual."):
            mapped["union." + key] = value
        elif key.startswith("text."):
            mapped["union." + key] = value
        elif key.startswith(_CLIP_TEXT_KEYS):
            mapped["union.text." + key] = value
        elif key.startswith(_CLIP_UNUSED_KEYS):
            ignored.append(key)
        else:
            mapped["union.unknown." + key] = value
    model_state = {
        k: v
        for k, v in model.state_dict().items()
        if k.startswith(("union.visual.", "union.text."))
    }
    for key in list(mapped):  # projections design B does not use
        if key in ("union.visual.proj", "union.text.text_projection") and key not in model_state:
            ignored.append(key.removeprefix("union."))
            del mapped[key]
    pos_key = "union.visual.positional_embedding"
    if pos_key in mapped and pos_key in model_state:
        mapped[pos_key] = resize_position_table(mapped[pos_key], model.union.grid)
    text_pos = "union.text.positional_embedding"
    if text_pos in mapped and text_pos in model_state:
        n = model_state[text_pos].shape[0]
        if mapped[text_pos].shape[0] > n:
            mapped[text_pos] = mapped[text_pos][:n]
    report = _compare(model_state, mapped, source)
    report.unexpected = [k.removeprefix("union.unknown.") for k in report.unexpected]
    report.ignored = sorted(ignored)
    if strict and not report.ok:
        raise CheckpointError(
            f"open_clip weights do not fit {model.config.name} ({model.config.clip_model}):\n"
            f"{report.format()}"
        )
    _copy_in(model, {k: mapped[k] for k in report.loaded})
    logger.info("open_clip init: %s", report.format())
    return report


def _copy_in(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    targets = dict(model.state_dict(keep_vars=True))
    with torch.no_grad():
        for key, value in tensors.items():
            targets[key].copy_(value.to(targets[key].dtype))


def init_rs2sam2_pretrained(model: nn.Module, sources: Mapping[str, str]) -> list[LoadReport]:
    """Architecture hook: ``{"sam2": path, "clip": path}`` (either may be absent).

    SAM 2 first, then open_clip; both non-strict (the adapters and fusion parts stay fresh).

    Raises:
        ConfigError: A kind other than ``sam2`` / ``clip``.
        CheckpointError: An unreadable or unsafe file.
    """
    from ..errors import ConfigError

    unknown = sorted(set(sources) - {"sam2", "clip"})
    if unknown:
        raise ConfigError(f"RS2-SAM 2 takes pretrained 'sam2' and 'clip' files, got {unknown}")
    reports = []
    if sources.get("sam2"):
        reports.append(load_sam2_weights(model, sources["sam2"], strict=False))
    if sources.get("clip"):
        reports.append(load_open_clip_weights(model, sources["clip"], strict=False))
    return reports
