"""What a model's answers are worth, per concept: measured quality and known failure cases.

The table ``weights/concept_quality.json`` holds, for each model it knows (keyed by the
weights' sha256, :attr:`Segmenter.checkpoint_sha256`), the per-concept quality measured on a
held-out split with the command that reproduces it (``tools/concept_quality.py``) and the
failure cases the model card records. A model that is not in the table gets no note at all:
numbers are never borrowed from another model. Pure Python, no torch.

Example:
    >>> note = concept_note(sha256, concepts_in("the water"))
    >>> note.text
    "the bundled model on 'water': mIoU 55.1 measured on the dubai val split (n=102); ..."
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ConceptNote", "concept_note", "concepts_in", "load_quality_table"]

QUALITY_PATH = Path(__file__).resolve().parent / "weights" / "concept_quality.json"


@dataclass(frozen=True)
class ConceptNote:
    """What the model is known to be worth on a prompt's concepts.

    Attributes:
        text: One or two sentences for the user (numbers with their split and n).
        weak: True when a concept is below the table's bar or has a known failure case; the
            plugin then offers the remedies (the published model, teaching from polygons).
        concepts: The concepts the note is about (lexicon keys).
    """

    text: str
    weak: bool
    concepts: tuple[str, ...]


@functools.lru_cache(maxsize=4)
def load_quality_table(path: str | None = None) -> dict[str, Any]:
    """The shipped table (read once); ``{}`` when the file is missing."""
    file = Path(path) if path else QUALITY_PATH
    if not file.is_file():
        return {}
    data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return data


def concepts_in(text: str) -> tuple[str, ...]:
    """Trained concepts named in ``text`` (lexicon keys, in text order).

    Trained names and the lexicon's synonyms both count ("the lake" names ``water``).
    """
    from .text.lexicon import load_lexicon, words_of

    lex = load_lexicon()
    words = [m.group(0).lower() for m in words_of(text)]
    found: list[str] = []
    i = 0
    while i < len(words):
        phrase = lex.match(words, i)
        if phrase is not None:
            found.append(phrase.concept)
            i += len(phrase.words)
        else:
            i += 1
    return tuple(dict.fromkeys(found))


def _label(concept: str) -> str:
    """The concept's trained plural name ("bare land", "storage tanks")."""
    from .text.lexicon import load_lexicon

    info = load_lexicon().concepts.get(concept)
    return str(info["pl"]) if info else concept.replace("_", " ")


def concept_note(
    weights_sha256: str, concepts: Sequence[str], table: dict[str, Any] | None = None
) -> ConceptNote | None:
    """The note for a model and the concepts of a prompt, or None when nothing is known.

    Args:
        weights_sha256: The model's weights hash (``Segmenter.checkpoint_sha256``).
        concepts: Lexicon keys the prompt names (:func:`concepts_in`).
        table: A table other than the shipped one (tests).

    Returns:
        None for a model the table does not know, or a prompt naming none of its concepts.
    """
    data = table if table is not None else load_quality_table()
    model = data.get("models", {}).get(weights_sha256)
    if not model or not concepts:
        return None
    bar = float(model.get("weak_below_miou", 0.0))
    measured = model.get("concepts", {})
    failures = model.get("failure_cases", {})
    parts: list[str] = []
    weak = False
    known: list[str] = []
    for concept in concepts:
        row = measured.get(concept)
        failure = failures.get(concept, "")
        if row is None and not failure:
            continue
        known.append(concept)
        if row is not None:
            parts.append(
                f"{model.get('label', 'this model')} on '{_label(concept)}': mIoU "
                f"{row['mIoU']:.1f} measured on the {row['set']} {row['split']} split "
                f"(n={row['n']} expressions naming it)"
            )
            weak = weak or row["mIoU"] < bar
        if failure:
            parts.append(f"known failure: {failure}")
            weak = True
    if not parts:
        return None
    text = "; ".join(parts) + "."
    text = text[0].upper() + text[1:]
    return ConceptNote(text=text, weak=weak, concepts=tuple(known))
