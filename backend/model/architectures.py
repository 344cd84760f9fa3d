"""Model architectures: one registry, one factory, one interface (stdlib-only module).

A checkpoint names its architecture (header key ``architecture``; files written before it
existed are ``"rs2sam2"``) and stores its config as JSON. The name selects an entry of this
registry, which says how to read the config and which builder makes the model; the file never
names code. Everything above the model (``Segmenter``, the pipeline, the CLI, the plugin,
training) works through the interface below, so a new architecture plugs in here and nowhere
else.

Interface of a built model (an ``nn.Module``):

* ``config``: its config (``name``, ``image_size``, ``gsd_m``, ``to_dict()``);
* ``prepare_inputs(images (N, H, W, 3) uint8, texts) -> inputs`` with ``.to(device)``;
* ``forward(inputs) -> output`` with ``.logits`` ``(N, 1, S, S)`` float32;
* ``unknown_words(text) -> list[str]``, ``device``, ``apply_freezing()``.

Example:
    >>> get_architecture("rs2sam2").config_type().__name__
    'ModelConfig'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ..errors import CheckpointError

__all__ = ["Architecture", "architecture_of", "get_architecture", "list_architectures"]

DEFAULT_ARCHITECTURE = "rs2sam2"
"""Architecture of checkpoints whose header has no ``architecture`` key."""


@dataclass(frozen=True)
class Architecture:
    """One model family.

    Attributes:
        name: Registry key, stored in checkpoints.
        config_class: ``".module:Class"`` of its config (a frozen dataclass with
            ``from_dict``), relative to ``backend.model``.
        builder: ``".module:function"`` (relative to ``backend.model``) building a random-init
            model:
            ``builder(config, device=..., seed=...)`` (``device="meta"`` allocates nothing).
        description: One line for listings.
        pretrained: ``"module:function"`` initialising parts of a built model from local
            pretrained files: ``init(model, {kind: path}) -> list[LoadReport]``; the kinds are
            the architecture's own (``sam2``/``clip``, ``swin``/``bert``), and an unknown
            kind is an error.
    """

    name: str
    config_class: str
    builder: str
    description: str = ""
    pretrained: str = ""

    def config_type(self) -> type:
        """The config class (imported on first use)."""
        return _resolve(self.config_class)

    def config_from_dict(self, data: Any) -> Any:
        """Parse and validate a stored config (raises ``ConfigError`` on bad values)."""
        return self.config_type().from_dict(data)

    def build(self, config: Any, *, device: Any = "cpu", seed: int | None = 0) -> Any:
        """Random-init model of ``config`` in eval mode."""
        return _resolve(self.builder)(config, device=device, seed=seed)

    def init_pretrained(self, model: Any, sources: dict[str, str]) -> list[Any]:
        """Initialise parts of ``model`` from local files ``{kind: path}`` (see ``pretrained``).

        Raises:
            ConfigError: The architecture takes no pretrained files, or an unknown kind.
        """
        if not sources:
            return []
        if not self.pretrained:
            from ..errors import ConfigError

            raise ConfigError(
                f"architecture {self.name!r} takes no pretrained files, got " f"{sorted(sources)}"
            )
        return list(_resolve(self.pretrained)(model, dict(sources)))


_ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    """Add ``arch`` (code of this package only: the names are ours, never a file's)."""
    if arch.name in _ARCHITECTURES:
        raise ValueError(f"architecture {arch.name!r} is already registered")
    _ARCHITECTURES[arch.name] = arch
    return arch


def list_architectures() -> list[str]:
    """Registered architecture names."""
    return sorted(_ARCHITECTURES)


def get_architecture(name: Any) -> Architecture:
    """The registered architecture ``name``.

    Raises:
        CheckpointError: Unknown name (the message lists the known ones).
    """
    try:
        return _ARCHITECTURES[name]
    except (KeyError, TypeError):
        shown = name[:60] if isinstance(name, str) else type(name).__name__
        raise CheckpointError(
            f"unknown model architecture {shown!r}; this backend knows "
            f"{', '.join(list_architectures())}. Was the checkpoint written by a newer version?"
        ) from None


def architecture_of(config: Any) -> Architecture:
    """The architecture a config object belongs to (its class attribute ``architecture``)."""
    return get_architecture(getattr(config, "architecture", DEFAULT_ARCHITECTURE))


def _resolve(ref: str) -> Any:
    """Import ``".module:attr"`` relative to this package.

    Relative references keep a vendored copy of the backend (``rs2sam_qgis.libs.backend``)
    on its own modules.
    """
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module, package=__package__), attr)


register_architecture(
    Architecture(
        name="rs2sam2",
        config_class=".configs:ModelConfig",
        builder=".rs2sam:build_model",
        description="RS2-SAM 2 (union encoder + SAM 2 with BHFM adapters and the MPG)",
        pretrained=".init_weights:init_rs2sam2_pretrained",
    )
)
register_architecture(
    Architecture(
        name="lgce",
        config_class=".lgce.config:LGCEConfig",
        builder=".lgce.model:build_lgce",
        pretrained=".lgce.pretrained:init_lgce_pretrained",
        description="LGCE (RRSIS paper): Swin + pixel-word attention + cross-scale enhancement",
    )
)
register_architecture(
    Architecture(
        name="rs2sam2-official",
        config_class=".official.config:OfficialConfig",
        builder=".official.model:build_official_model",
        description="Published RS2-SAM 2 layout (BEiT-3 union encoder + SAM 2.0 with the "
        "paper's adapters), for the released weights",
    )
)
register_architecture(
    Architecture(
        name="scoped",
        config_class=".scoped_config:ScopedConfig",
        builder=".scoped:build_scoped",
        description="An adaptation scoped to its taught texts: the adapted weights answer "
        "those, the parent's unchanged weights every other text (training.adapt)",
    )
)
