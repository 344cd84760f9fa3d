"""Building the SAM 2 part of RS2-SAM 2 from a registered SAM 2 architecture (never from a file).

A checkpoint names its SAM 2 architecture by a key of
:data:`~backend.model.configs.SAM2_ARCHS` (for example ``"nano.yaml"``); the key selects a model
description that ships with this package (``backend/model/sam2_yaml/``) or with the installed
``sam2`` package, at a fixed location. Nothing a checkpoint contains is used as a path, and the
description is built by :func:`build_from_node`, which only constructs the SAM 2 classes of
:data:`ALLOWED_TARGETS` with plain keyword values. Hydra's ``instantiate`` (which imports and
calls whatever ``_target_`` names) is never used, so a checkpoint cannot make the loader import,
call or unpickle anything.

The construction order is the one Hydra's recursive instantiation follows (children in YAML key
order, depth first), so the random init of a seeded build is bit-identical to
``hydra.utils.instantiate`` on the same description (tested).
"""

from __future__ import annotations

import importlib
import re
from importlib import resources
from typing import Any

from torch import nn

from ..errors import ConfigError
from .configs import SAM2_ARCHS, ModelConfig

__all__ = ["ALLOWED_TARGETS", "build_from_node", "load_sam2_yaml", "sam2_description"]

ALLOWED_TARGETS: frozenset[str] = frozenset(
    {
        "sam2.modeling.sam2_base.SAM2Base",
        "sam2.modeling.backbones.image_encoder.ImageEncoder",
        "sam2.modeling.backbones.image_encoder.FpnNeck",
        "sam2.modeling.backbones.hieradet.Hiera",
        "sam2.modeling.position_encoding.PositionEmbeddingSine",
        "sam2.modeling.memory_attention.MemoryAttention",
        "sam2.modeling.memory_attention.MemoryAttentionLayer",
        "sam2.modeling.sam.transformer.RoPEAttention",
        "sam2.modeling.memory_encoder.MemoryEncoder",
        "sam2.modeling.memory_encoder.MaskDownSampler",
        "sam2.modeling.memory_encoder.Fuser",
        "sam2.modeling.memory_encoder.CXBlock",
    }
)
"""The only classes a SAM 2 description may construct."""

_SCALARS = (bool, int, float, str, type(None))


def sam2_description(key: str, *, name: str = "model") -> dict[str, Any]:
    """The ``model`` node of the registered SAM 2 architecture ``key``, as the file has it.

    Args:
        key: A key of :data:`SAM2_ARCHS`.
        name: The config name, for messages.

    Returns:
        A plain ``dict`` (``yaml.safe_load``: no tags, no objects).

    Raises:
        ConfigError: If the architecture is not registered or its description is missing.
    """
    import yaml

    try:
        package, relative = SAM2_ARCHS[key]
    except (KeyError, TypeError):
        raise ConfigError(
            f"{name}: unknown SAM 2 architecture {key!r}; known: {', '.join(sorted(SAM2_ARCHS))}"
        ) from None
    path = resources.files(package).joinpath(*relative.split("/"))
    if not path.is_file():
        raise ConfigError(
            f"{name}: the description of SAM 2 architecture {key!r} is "
            f"missing ({package}/{relative}); reinstall the package that ships it"
        )
    document = _yaml12_floats(yaml.safe_load(path.read_text(encoding="utf-8")))
    node = document.get("model") if isinstance(document, dict) else None
    if not isinstance(node, dict):
        raise ConfigError(f"{package}/{relative} has no 'model' mapping")
    return dict(node)


def load_sam2_yaml(config: ModelConfig) -> dict[str, Any]:
    """The ``model`` node of the registered SAM 2 architecture, ``image_size`` from ``config``.

    Args:
        config: A model config (any architecture) whose ``sam2_yaml`` is a key of
            :data:`SAM2_ARCHS` (checked by the config).

    Returns:
        A plain ``dict`` (``yaml.safe_load``: no tags, no objects).

    Raises:
        ConfigError: If the architecture is not registered or its description is missing.
    """
    node = sam2_description(config.sam2_yaml, name=config.name)
    node["image_size"] = config.image_size
    return node


_FLOAT_RE = re.compile(r"[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+")


def _yaml12_floats(node: Any) -> Any:
    """``yaml.safe_load`` reads ``1e-6`` as a string (YAML 1.1); read it as YAML 1.2 does."""
    if isinstance(node, dict):
        return {k: _yaml12_floats(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_yaml12_floats(v) for v in node]
    if isinstance(node, str) and _FLOAT_RE.fullmatch(node):
        return float(node)
    return node


def build_from_node(node: Any, *, where: str = "model") -> Any:
    """Construct a SAM 2 description: ``_target_`` mappings become allow-listed classes.

    Args:
        node: A mapping with ``_target_`` (one of :data:`ALLOWED_TARGETS`) and keyword values,
            a list, or a scalar; nested mappings with ``_target_`` are built first, in key order.
        where: Position in the description, for messages.

    Returns:
        The built object (a ``SAM2Base`` for a whole ``model`` node).

    Raises:
        ConfigError: On a target outside the allow-list or a value that is not plain data.
    """
    if isinstance(node, _SCALARS):
        return node
    if isinstance(node, list):
        return [build_from_node(v, where=f"{where}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, dict):
        raise ConfigError(f"SAM 2 description: {where} holds a {type(node).__name__}, not data")
    kwargs = {}
    for key, value in node.items():
        if key == "_target_":
            continue
        if not isinstance(key, str) or key.startswith("_"):
            raise ConfigError(f"SAM 2 description: {where} has a reserved key {key!r}")
        kwargs[key] = build_from_node(value, where=f"{where}.{key}")
    if "_target_" not in node:
        return kwargs
    target = node["_target_"]
    if target not in ALLOWED_TARGETS:
        raise ConfigError(
            f"SAM 2 description: {where} names {target!r}, which is not an allowed SAM 2 class"
        )
    module_name, _, class_name = str(target).rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**kwargs)


def _build_sam2(config: ModelConfig) -> nn.Module:
    """Random-init ``SAM2Base`` of ``config``'s registered SAM 2 architecture."""
    return build_from_node(load_sam2_yaml(config))
