"""A scoped adaptation: the adapted weights answer only the texts they were taught.

An adaptation to the user's imagery (``training.adapt``) can make the model worse at the
concepts it was not taught. A scoped checkpoint holds both weight sets of one architecture:
texts equal to a taught text (case and spacing ignored) go to ``adapted``, every other text to
``base``, which is the parent unchanged. Architecture ``scoped`` (registered in
:mod:`backend.model.architectures`); its config names the inner architecture and config.

Example:
    >>> model = build_scoped(ScopedConfig("rs2sam2", nano_cfg, ("water",)), device="cpu")
    >>> model.prepare_inputs(images, ["water", "the buildings"])  # row 0 adapted, row 1 base
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .scoped_config import ScopedConfig, scope_key

__all__ = ["ScopedConfig", "ScopedModel", "build_scoped", "scope_key"]


@dataclass
class ScopedInputs:
    """Inner inputs plus which rows go to the adapted weights."""

    inner: Any
    use_adapted: list[bool]

    def to(self, device: torch.device | str) -> ScopedInputs:
        """Copy on ``device``."""
        return ScopedInputs(self.inner.to(device), list(self.use_adapted))


def _rows(inputs: Any, index: list[int]) -> Any:
    """The rows ``index`` of a dataclass of batch-first tensors (None fields kept)."""
    picked = {}
    for f in dataclasses.fields(inputs):
        value = getattr(inputs, f.name)
        picked[f.name] = value[index] if isinstance(value, torch.Tensor) else value
    return type(inputs)(**picked)


class ScopedModel(nn.Module):
    """Two weight sets of one architecture, chosen per text (see the module docstring).

    Args:
        config: The :class:`ScopedConfig`.
        base: The parent model (answers every text that was not taught).
        adapted: The adapted model (answers the taught texts).
    """

    def __init__(self, config: ScopedConfig, base: nn.Module, adapted: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.base = base
        self.adapted = adapted
        self._taught = {scope_key(t) for t in config.texts}

    @property
    def image_size(self) -> int:
        """Input size in pixels."""
        return self.config.image_size

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.base.device  # type: ignore[no-any-return]

    def apply_freezing(self) -> None:
        """Inference only: nothing trains."""
        for p in self.parameters():
            p.requires_grad_(False)

    def unknown_words(self, text: str) -> list[str]:
        """Words the base never saw (both share the vocabulary)."""
        return self.base.unknown_words(text)  # type: ignore[no-any-return]

    def is_taught(self, text: str) -> bool:
        """Whether ``text`` goes to the adapted weights."""
        return scope_key(text) in self._taught

    def prepare_inputs(self, images: Any, texts: Sequence[str], *args: Any) -> ScopedInputs:
        """The inner preprocessing, plus the route of every row."""
        inner = self.base.prepare_inputs(images, list(texts), *args)
        return ScopedInputs(inner, [self.is_taught(t) for t in texts])

    def forward(self, inputs: ScopedInputs) -> Any:
        """Each row through its weights; the outputs' ``logits`` are merged in row order.

        Returns:
            The inner output type; when rows are mixed, its other fields are those of the
            base rows' output (inference reads ``logits`` only).
        """
        routes = inputs.use_adapted
        if all(routes):
            return self.adapted(inputs.inner)
        if not any(routes):
            return self.base(inputs.inner)
        a = [i for i, r in enumerate(routes) if r]
        b = [i for i, r in enumerate(routes) if not r]
        out_a = self.adapted(_rows(inputs.inner, a))
        out_b = self.base(_rows(inputs.inner, b))
        logits = out_b.logits.new_empty((len(routes), *out_b.logits.shape[1:]))
        logits[a] = out_a.logits.to(logits.dtype)
        logits[b] = out_b.logits
        return dataclasses.replace(out_b, logits=logits)


def build_scoped(config: ScopedConfig, *, device: Any = "cpu", seed: int | None = 0
                 ) -> ScopedModel:
    """Random-init scoped model (both weight sets) in eval mode (``device="meta"`` works)."""
    from .architectures import get_architecture

    arch = get_architecture(config.inner_architecture)
    base = arch.build(config.inner, device=device, seed=seed)
    adapted = arch.build(config.inner, device=device, seed=seed)
    model = ScopedModel(config, base, adapted)
    model.apply_freezing()
    return model.eval()
