"""A small hook for what the plugin offers when an answer is weak.

When the bundled model is known to be weak on a prompt's concept (:mod:`backend.quality`), the
dock offers the remedies the project provides: get the published model, or teach the model
from a few polygons. Those features live in their own modules; they connect here with
:func:`register_remedy` (and :func:`unregister_remedy` on unload), and the dock shows one
button per registered remedy. Without any registered, the dock names them in words.

Example:
    >>> register_remedy(PUBLISHED_MODEL, "Get the published model…", open_manager)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PUBLISHED_MODEL = "published_model"
"""Key of the remedy that gets the published RS2-SAM 2 weights (the model manager)."""
TEACH = "teach"
"""Key of the remedy that teaches the model from a few polygons the user draws."""
ORDER = (PUBLISHED_MODEL, TEACH)


@dataclass(frozen=True)
class RemedyContext:
    """What a remedy is offered for.

    Attributes:
        prompt: The user's text.
        concepts: The trained concepts it names (lexicon keys, e.g. ``("water",)``).
        note: The quality note shown to the user.
        raster_layer_id: The raster that was segmented ("" when unknown).
        result_layer_id: The result layer ("" when none was added).
    """

    prompt: str
    concepts: tuple[str, ...] = ()
    note: str = ""
    raster_layer_id: str = ""
    result_layer_id: str = ""


@dataclass(frozen=True)
class Remedy:
    """One registered remedy: a button label and what it does."""

    key: str
    label: str
    callback: Callable[[RemedyContext], None]


_REGISTRY: dict[str, Remedy] = {}
_LISTENERS: list[Callable[[], None]] = []


def register_remedy(key: str, label: str, callback: Callable[[RemedyContext], None]) -> None:
    """Offer ``callback`` under ``label`` whenever an answer is weak (replaces ``key``)."""
    _REGISTRY[key] = Remedy(key, label, callback)
    _notify()


def unregister_remedy(key: str) -> None:
    """Stop offering ``key`` (no error when it was not registered)."""
    if _REGISTRY.pop(key, None) is not None:
        _notify()


def registered() -> list[Remedy]:
    """The registered remedies, the project's two first, in a stable order."""
    rank = {key: i for i, key in enumerate(ORDER)}
    return sorted(_REGISTRY.values(), key=lambda r: (rank.get(r.key, len(ORDER)), r.key))


def on_change(listener: Callable[[], None]) -> Callable[[], None]:
    """Call ``listener`` when the registry changes; returns a function that stops it."""
    _LISTENERS.append(listener)

    def stop() -> None:
        if listener in _LISTENERS:
            _LISTENERS.remove(listener)

    return stop


def _notify() -> None:
    for listener in list(_LISTENERS):
        listener()
