"""One cleaning of prompt text, shared by every entry point, and short quotes of long texts.

:func:`clean_text` is applied once where a text enters the system (``segment_raster`` and
``validate_inputs`` through :func:`backend.text.lexicon.interpret`, the CLI, the dock, the
Processing algorithm and the batch job all pass there) and again, idempotently, by the model's
``predict`` and by the tokeniser of every architecture (RS2-SAM 2 / open_clip BPE, LGCE,
the published XLM-R), so a direct model call gets the same text as the pipeline:

1. Unicode NFKC (full-width letters, ligatures, compatibility spaces -> plain forms);
2. invisible characters removed: format characters (category ``Cf``: bidi overrides and
   isolates, zero-width spaces and joiners, the BOM, soft hyphens, tag characters) and
   control characters other than whitespace (``Cc``);
3. whitespace collapsed to single spaces and stripped.

A text that changed in steps 1 or 2 gets one warning naming what was removed
(:func:`describe_cleaning`); whitespace-only changes are silent. No torch, no numpy.
"""

from __future__ import annotations

import unicodedata

from ..errors import InputError

__all__ = ["checked_text", "clean_text", "describe_cleaning", "quote_text"]

_MAX_LISTED = 4


def _invisible(char: str) -> bool:
    category = unicodedata.category(char)
    return category == "Cf" or (category == "Cc" and not char.isspace())


def clean_text(text: str) -> str:
    """``text`` after NFKC, without invisible characters, whitespace collapsed (see module)."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if not _invisible(c))
    return " ".join(text.split())


def describe_cleaning(text: str) -> str | None:
    """One sentence saying how :func:`clean_text` changed ``text``; None if only whitespace.

    Example: ``"the text was cleaned before use: 3 invisible characters removed (U+202E
    RIGHT-TO-LEFT OVERRIDE, U+200B ZERO WIDTH SPACE, U+FEFF ZERO WIDTH NO-BREAK SPACE); the
    model was given 'the buildings'"``.
    """
    nfkc = unicodedata.normalize("NFKC", text)
    removed = [c for c in nfkc if _invisible(c)]
    if not removed and " ".join(nfkc.split()) == " ".join(text.split()):
        return None
    parts = []
    if removed:
        kinds = list(dict.fromkeys(removed))
        listed = ", ".join(
            f"U+{ord(c):04X} {unicodedata.name(c, 'control character')}"
            for c in kinds[:_MAX_LISTED]
        )
        more = f" and {len(kinds) - _MAX_LISTED} other kinds" if len(kinds) > _MAX_LISTED else ""
        n = len(removed)
        parts.append(f"{n} invisible character{'s' * (n != 1)} removed ({listed}{more})")
    if " ".join(nfkc.split()) != " ".join(text.split()):
        parts.append("compatibility characters replaced by their plain forms (Unicode NFKC)")
    return (
        f"the text was cleaned before use: {'; '.join(parts)}; the model was given "
        f"{quote_text(clean_text(text))}"
    )


def quote_text(text: str, limit: int = 60) -> str:
    """``repr`` of ``text``, or of its first ``limit`` characters and its length if longer."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def checked_text(text: object) -> str:
    """The cleaned caption of a model call (:func:`clean_text`), or an error.

    Raises:
        InputError: ``text`` is not a string, or nothing is left after cleaning (empty,
            whitespace or invisible characters only).
    """
    if not isinstance(text, str):
        shown = quote_text(repr(text))
        raise InputError(f"text must be a str, got {type(text).__name__}: {shown}")
    cleaned = clean_text(text)
    if not cleaned:
        raise InputError(
            f"text is empty or whitespace ({quote_text(text)}, after removing invisible "
            "characters); describe what to segment"
        )
    return cleaned
