"""Baselines for the ablation table of issue 7, trained by the same trainer by name.

``BASELINES`` maps a ``model:`` name of a training config to its builder; the trainer, the
export and ``python -m training eval`` (training ``.pt`` files and exported
``.safetensors``) dispatch here for these names instead of ``backend.model``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["BASELINES", "build_baseline", "is_baseline", "is_baseline_file", "load_baseline",
           "save_baseline"]

BASELINES = ("film-unet",)
"""Model names that are training-only baselines (not RS2-SAM 2 registry configs)."""


def is_baseline(name_or_config: str | dict[str, Any]) -> bool:
    """True for a baseline name, or a stored model-config dict of a baseline."""
    if isinstance(name_or_config, dict):
        return name_or_config.get("arch") in BASELINES
    return name_or_config in BASELINES


def build_baseline(name: str, overrides: dict[str, Any] | None = None, *,
                   seed: int | None = 0) -> Any:
    """Random-init baseline ``name`` with config ``overrides`` (eval mode, CPU)."""
    from .film_unet import build_film_unet

    return build_film_unet(seed=seed, **dict(overrides or {}))


def is_baseline_file(path: str | Path) -> bool:
    """True when a ``.safetensors`` file holds a baseline (its header's model config)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return is_baseline(json.loads(meta.get("model_config", "{}")))
    except Exception:  # not a readable safetensors file: the loader reports it
        return False


def _from_config_dict(data: dict[str, Any]) -> Any:
    from .film_unet import FilmUNet, FilmUNetConfig

    return FilmUNet(FilmUNetConfig.from_dict(data))


def load_baseline(path: str | Path, state: dict[str, Any] | None = None,
                  config: dict[str, Any] | None = None) -> Any:
    """Rebuild a baseline (float32, eval mode).

    From a ``.safetensors`` written by :func:`save_baseline`, or from a training
    checkpoint's ``state`` and ``config``.
    """
    if state is None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            config = json.loads(f.metadata()["model_config"])
        state = load_file(str(path))
    model = _from_config_dict(dict(config or {}))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def save_baseline(model: Any, path: str | Path, metadata: dict[str, Any]) -> str:
    """Write a baseline as ``.safetensors`` (config + metadata in the header); returns sha256."""
    from safetensors.torch import save_file

    from backend.model.checkpoint import weights_sha256

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    sha = weights_sha256(state)
    save_file(state, str(path), metadata={"model_config": json.dumps(model.config.to_dict()),
                                          "metadata": json.dumps(metadata, default=str),
                                          "weights_sha256": sha})
    return sha
