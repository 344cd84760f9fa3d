"""The model-config registry shared by every architecture, and the checks of stored configs.

Stdlib only (the plugin lists models before torch is loaded). A config comes from an untrusted
checkpoint header, so :func:`check_field_types` refuses wrong types and out-of-range sizes and
:func:`config_from_dict` refuses unknown fields before anything is built.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any

from ..errors import ConfigError
from .architectures import get_architecture, list_architectures

__all__ = [
    "check_field_types",
    "config_from_dict",
    "get_model_config",
    "list_models",
    "register_model_config",
]


def config_from_dict(cls: Any, data: Any) -> Any:
    """Build the config dataclass ``cls`` from a stored JSON object (any architecture).

    Raises:
        ConfigError: If ``data`` is not an object, a key is unknown or a required one missing.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"model_config must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"model_config has unknown fields {unknown}; this backend knows {sorted(known)}. "
            "Was the checkpoint written by a newer version?"
        )
    try:
        return cls(**data)
    except TypeError as err:
        raise ConfigError(f"model_config is incomplete: {err}") from None


def check_field_types(
    config: Any, limits: dict[str, tuple[float, float]], *, skip: Any = ()
) -> None:
    """Check every dataclass field of ``config`` against its annotation and ``limits``.

    Annotations understood: ``int``, ``float``, ``float | None``, ``bool``, ``str`` (a config
    from a checkpoint header is untrusted: a wrong type or an out-of-range size is refused
    before anything is built).

    Raises:
        ConfigError: Naming the field, the value and the allowed range.
    """
    name = getattr(config, "name", "?")
    for f in fields(config):
        if f.name in skip:
            continue
        value = getattr(config, f.name)
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if kind.startswith("float"):
            ok = value is None if "None" in kind else False
            ok = ok or (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "bool":
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ConfigError(
                f"{name}: {f.name} must be {kind}, got {type(value).__name__} {value!r}"
            )
        if f.name in limits and value is not None:
            lo, hi = limits[f.name]
            if not lo <= value <= hi:
                raise ConfigError(
                    f"{name}: {f.name}={value!r} is outside the supported range "
                    f"[{lo:g}, {hi:g}]; the checkpoint is damaged or not for this backend"
                )


_MODEL_CONFIGS: dict[str, Any] = {}


def _load_named_configs() -> None:
    """Import the config module of every registered architecture (each registers its names).

    The registry knows no architecture itself: the architecture registry says where each
    config class lives, and importing that module adds its named configs here.
    """
    for name in list_architectures():
        get_architecture(name).config_type()


def register_model_config(config: Any) -> Any:
    """Add ``config`` (a config of any registered architecture) under ``config.name``.

    Raises:
        ConfigError: If the name is taken.
    """
    if config.name in _MODEL_CONFIGS:
        raise ConfigError(f"model config {config.name!r} is already registered")
    _MODEL_CONFIGS[config.name] = config
    return config


def list_models() -> list[str]:
    """Names accepted by :func:`get_model_config`, ``build_model`` and ``load_segmenter``."""
    _load_named_configs()
    return sorted(_MODEL_CONFIGS)


def get_model_config(name: str, **overrides: Any) -> Any:
    """Return the config registered as ``name``, with fields replaced by ``overrides``.

    The config is a :class:`ModelConfig` or the config class of another registered
    architecture (``OfficialConfig`` for ``official-*``).

    Raises:
        ConfigError: If ``name`` is not registered (the message lists the valid names) or
            an override is not a field.
    """
    if not isinstance(name, str) or name not in _MODEL_CONFIGS:
        _load_named_configs()
    try:
        config = _MODEL_CONFIGS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown model config {name!r}; valid names: {', '.join(list_models())}"
        ) from None
    if not overrides:
        return config
    try:
        return replace(config, **overrides)
    except TypeError as err:
        raise ConfigError(f"bad override for {name!r}: {err}") from None
