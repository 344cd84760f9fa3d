"""Building the SAM 2 part of RS2-SAM 2 from a SAM 2 model description."""

from __future__ import annotations

from importlib import resources
from typing import Any

from torch import nn

from ..errors import ConfigError
from .configs import ModelConfig

__all__ = ["load_sam2_yaml"]


def load_sam2_yaml(config: ModelConfig) -> Any:
    """The ``model`` node of ``config.sam2_yaml`` with ``image_size`` set from ``config``.

    Raises:
        ConfigError: If the YAML file does not exist.
    """
    from omegaconf import OmegaConf

    ref = config.sam2_yaml
    if ref.startswith("sam2:"):
        path = resources.files("sam2") / ref.removeprefix("sam2:")
    else:
        path = resources.files(__package__) / "sam2_yaml" / ref
    if not path.is_file():
        raise ConfigError(
            f"{config.name}: SAM 2 YAML {ref!r} not found (looked at {path}); use a file in "
            "backend/model/sam2_yaml/ or 'sam2:configs/sam2.1/<file>.yaml'"
        )
    node = OmegaConf.load(str(path)).model
    node.image_size = config.image_size
    return node


def _build_sam2(config: ModelConfig) -> nn.Module:
    from hydra.utils import instantiate

    return instantiate(load_sam2_yaml(config), _recursive_=True)
