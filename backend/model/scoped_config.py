"""Config of a scoped adaptation (stdlib only: listing models never imports torch).

See :mod:`backend.model.scoped` for the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError

__all__ = ["ScopedConfig", "scope_key"]


def scope_key(text: str) -> str:
    """How texts are compared with the taught ones: lower case, single spaces."""
    return " ".join(str(text).lower().split())


@dataclass(frozen=True)
class ScopedConfig:
    """Config of a scoped adaptation.

    Attributes:
        inner_architecture: Architecture of both weight sets (e.g. ``rs2sam2``).
        inner: Their config (that architecture's config object).
        texts: The taught texts (compared with :func:`scope_key`).
    """

    inner_architecture: str
    inner: Any
    texts: tuple[str, ...]
    architecture: ClassVar[str] = "scoped"

    @property
    def name(self) -> str:
        """The inner config's name (what the model is, for labels and speed tables)."""
        return str(self.inner.name)

    @property
    def image_size(self) -> int:
        """Input size in pixels."""
        return int(self.inner.image_size)

    @property
    def gsd_m(self) -> float | None:
        """Working resolution in m/px."""
        return self.inner.gsd_m  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"inner_architecture": self.inner_architecture, "inner": self.inner.to_dict(),
                "texts": list(self.texts)}

    @classmethod
    def from_dict(cls, data: Any) -> ScopedConfig:
        """Parse a stored config (raises ``ConfigError``)."""
        from .architectures import get_architecture

        if not isinstance(data, dict) or set(data) != {"inner_architecture", "inner", "texts"}:
            raise ConfigError("a scoped config needs exactly inner_architecture, inner, texts")
        name = data["inner_architecture"]
        if name == cls.architecture:
            raise ConfigError("a scoped model cannot contain another scoped model")
        texts = data["texts"]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip()
                                                               for t in texts):
            raise ConfigError("a scoped config needs a non-empty list of taught texts")
        try:
            arch = get_architecture(name)
        except Exception as err:  # CheckpointError: unknown name
            raise ConfigError(str(err)) from None
        return cls(arch.name, arch.config_from_dict(data["inner"]), tuple(texts))
