"""What the model is known to be worth on a prompt: computed after a run, shown with its result.

The numbers and failure cases come from the backend's table (:mod:`backend.quality`), keyed by
the weights' hash: the bundled model has them, a checkpoint the table does not know gets no
note (nothing is borrowed from another model).
"""

from __future__ import annotations

from typing import Any

from ._backend import backend_module

QUALITY_PROPERTY = "rs2sam/quality"
"""Custom property of a result layer: the quality note of its prompt ("" when none)."""


def note_for(segmenter: Any, prompt_used: str) -> tuple[str, bool, tuple[str, ...]]:
    """``(text, weak, concepts)`` for a segmenter and the text it was given ("" when unknown)."""
    sha = str(getattr(segmenter, "checkpoint_sha256", "") or "")
    if not sha:
        return "", False, ()
    quality = backend_module("quality")
    concepts = quality.concepts_in(prompt_used)
    note = quality.concept_note(sha, concepts)
    if note is None:
        return "", False, concepts
    return str(note.text), bool(note.weak), tuple(concepts)


def note_concepts(text: str) -> tuple[str, ...]:
    """The trained concepts ``text`` names (synonyms included; lexicon keys)."""
    return tuple(backend_module("quality").concepts_in(text))


def annotate_layer(layer: Any, note: str) -> None:
    """Put the note into the result layer: a custom property and its metadata abstract."""
    if not note:
        return
    layer.setCustomProperty(QUALITY_PROPERTY, note)
    metadata = layer.metadata()
    abstract = metadata.abstract()
    metadata.setAbstract(f"{abstract}\n\n{note}".strip() if abstract else note)
    layer.setMetadata(metadata)
