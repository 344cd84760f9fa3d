"""How a worker builds its segmenter: a small picklable description, one factory.

A worker process (local or on a Ray node) must load the model itself, so the job carries a
:class:`SegmenterSpec` instead of a segmenter object. ``kind`` selects the builder:

* ``"model"``: :func:`backend.load_segmenter` (``checkpoint``, ``config``, ``device``,
  ``threads``); no checkpoint and no config = the bundled default weights.
* ``"standin"``: a stand-in of :mod:`backend.standins` (``name``: red, constant, sleep;
  ``seconds`` for sleep) - tests and benchmarks.
* ``"factory"``: ``"package.module:function"`` called with ``kwargs`` - any other segmenter
  (the function must be importable on every worker).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..types import SegmenterLike

__all__ = ["SegmenterSpec", "build_segmenter"]


@dataclass(frozen=True)
class SegmenterSpec:
    """A picklable recipe for a segmenter (see the module docstring)."""

    kind: str = "model"
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (stored in the manifest: a resumed job must use the same model)."""
        return {"kind": self.kind, "options": dict(sorted(self.options.items()))}


def _model(options: dict[str, Any]) -> SegmenterLike:
    from .. import load_segmenter

    return load_segmenter(
        options.get("checkpoint"),
        config=options.get("config"),
        device=options.get("device", "auto"),
        threads=options.get("threads"),
    )


def _standin(options: dict[str, Any]) -> SegmenterLike:
    from .. import standins

    name = options.get("name", "red")
    size = int(options.get("image_size", 1024))
    if name == "red":
        return standins.RedSegmenter(image_size=size)
    if name == "constant":
        return standins.ConstantSegmenter(float(options.get("value", 1.0)), image_size=size)
    if name == "sleep":
        return standins.SleepSegmenter(float(options.get("seconds", 0.05)), image_size=size)
    raise InputError(f"stand-in {name!r} is unknown; use red, constant or sleep")


def _factory(options: dict[str, Any]) -> SegmenterLike:
    target = str(options.get("target", ""))
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise InputError(f"factory {target!r} must be 'package.module:function'")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"factory {target!r} cannot be imported ({exc})") from exc
    return function(**options.get("kwargs", {}))


_BUILDERS: dict[str, Callable[[dict[str, Any]], SegmenterLike]] = {
    "model": _model,
    "standin": _standin,
    "factory": _factory,
}


def build_segmenter(spec: SegmenterSpec) -> SegmenterLike:
    """Build the segmenter ``spec`` describes (in the calling process).

    Raises:
        InputError: Unknown kind or stand-in; CheckpointError, ConfigError, DeviceError from
            :func:`backend.load_segmenter`.
    """
    builder = _BUILDERS.get(spec.kind)
    if builder is None:
        raise InputError(f"segmenter kind {spec.kind!r} is unknown; use {sorted(_BUILDERS)}")
    return builder(spec.options)
