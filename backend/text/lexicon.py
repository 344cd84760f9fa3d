"""Between the user's words and the model's: plurals, variants and synonyms of trained concepts.

The bundled weights were trained on a small generated vocabulary (``training.refer.grammar``:
"building", "water", "trees and grass", "vehicles", ...). :func:`interpret` rewrites a prompt
so that everyday words reach the model as the names it was trained with ("the houses by the
lake" -> "the buildings by the water"), says what it changed, and refuses text in which the
model knows no word at all (another script, emoji, punctuation, only unknown words).

The table is ``lexicon.json`` beside this file, derived from WordNet 3.0 at development time by
``tools/build_lexicon.py`` (see its docstring for how words are chosen). Pure Python: no
torch, no rasterio, no WordNet at run time.

Example:
    >>> seg = load_segmenter()
    >>> interpret("the houses by the lake", seg.unknown_words).model_text
    'the buildings by the water'
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from .normalize import clean_text, describe_cleaning, quote_text

__all__ = [
    "Interpretation",
    "Lexicon",
    "Mapping",
    "interpret",
    "load_lexicon",
    "require_words",
    "words_of",
]

LEXICON_PATH = Path(__file__).resolve().with_name("lexicon.json")

UnknownWordsFn = Callable[[str], Sequence[str]]
"""``unknown_words(text) -> words of text the model never saw`` (``Segmenter.unknown_words``)."""

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def words_of(text: str) -> list[re.Match[str]]:
    """Words of ``text`` in any script (letters/digits, inner apostrophes), as regex matches.

    Hyphens, punctuation, symbols and emoji separate words and are never part of one.
    """
    return list(_WORD.finditer(text.replace("\u2019", "'")))


def require_words(text: str) -> list[re.Match[str]]:
    """:func:`words_of` the cleaned ``text`` (:func:`~.normalize.clean_text`), or an error.

    Returns:
        Matches in ``clean_text(text)`` (the same as ``text`` when it is already clean).

    Raises:
        InputError: ``text`` is only punctuation, symbols, emoji, spaces or invisible
            characters.
    """
    matches = words_of(clean_text(text))
    if not matches:
        raise InputError(
            f"text {quote_text(text)} has no words (only punctuation, symbols or emoji); "
            "describe what to segment in English words, e.g. 'the buildings' or 'water'"
        )
    return matches


def is_latin(word: str) -> bool:
    """Whether ``word`` is plain Latin letters/digits once accents are removed (café -> cafe)."""
    return _fold(word).isascii()


@dataclass(frozen=True)
class Mapping:
    """One rewrite: the user's ``said`` reached the model as ``used`` (``concept`` or "")."""

    said: str
    used: str
    concept: str = ""

    def __str__(self) -> str:
        return f"{self.said} \u2192 {self.used}"


@dataclass(frozen=True)
class Interpretation:
    """What the model is given for a prompt, and why.

    Attributes:
        text: The user's text, cleaned (:func:`~.normalize.clean_text`).
        model_text: The text the model gets (``text`` itself when nothing was rewritten).
        mappings: The rewrites, in text order (synonyms -> trained names, "a" -> "the", ...).
        unknown: Words of ``model_text`` the model never saw in training (lower case).
        concepts: Trained concepts ``model_text`` names (lexicon keys, e.g. ``"water"``).
        cleaned: How the user's text was cleaned (invisible characters removed, NFKC), or "".
    """

    text: str
    model_text: str
    mappings: tuple[Mapping, ...] = ()
    unknown: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()
    cleaned: str = ""

    def messages(self) -> list[str]:
        """One sentence per thing the user should know (cleaning, rewrites, unknown words)."""
        out = [self.cleaned] if self.cleaned else []
        concept_maps = [m for m in self.mappings if m.concept]
        if self.mappings:
            reason = (
                ", ".join(str(m) for m in concept_maps) + ": the names the model was trained with"
                if concept_maps
                else ", ".join(str(m) for m in self.mappings)
            )
            out.append(f"the model was given {self.model_text!r} ({reason})")
        if self.unknown:
            quoted = ", ".join(f"'{w}'" for w in self.unknown)
            verb = "it means" if len(self.unknown) == 1 else "they mean"
            out.append(
                f"the model never saw {quoted} in training, so {verb} nothing to it and the "
                "result follows the other words only; rephrase with other words"
            )
        return out


@dataclass(frozen=True)
class _Phrase:
    words: tuple[str, ...]
    concept: str
    replacement: str  # "" = a trained name, kept as it is


class Lexicon:
    """The shipped table (``lexicon.json``), indexed for phrase matching.

    Attributes:
        concepts: Concept key -> ``{"sg": name, "pl": name, "trained": [names]}``.
        function_words: Words that name no object (the grammar's template words and a few
            common English ones).
        rewrites: Single-word spelling/article rewrites (``"centre" -> "center"``).
        entries: Phrase -> ``[concept, "sg"|"pl", WordNet synset]``.
        trained: Every trained name -> its concept.
        trained_words: The words of the trained names.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.concepts: dict[str, dict[str, Any]] = data["concepts"]
        self.function_words: frozenset[str] = frozenset(data["function_words"])
        self.rewrites: dict[str, str] = data["rewrites"]
        self.entries: dict[str, list[str]] = data["entries"]
        self.source: str = data.get("source", "")
        trained: dict[str, str] = {}
        for concept, info in self.concepts.items():
            for name in info["trained"]:
                trained.setdefault(name, concept)
        self.trained = trained
        self.trained_words = frozenset(w for name in trained for w in name.split())
        index: dict[str, list[_Phrase]] = {}
        for name, concept in trained.items():
            words = tuple(name.split())
            index.setdefault(words[0], []).append(_Phrase(words, concept, ""))
        for phrase, (concept, number, _synset) in self.entries.items():
            words = tuple(phrase.split())
            replacement = self.concepts[concept][number]
            index.setdefault(words[0], []).append(_Phrase(words, concept, replacement))
        for phrases in index.values():  # longest first; a trained name wins a tie
            phrases.sort(key=lambda p: (-len(p.words), p.replacement != ""))
        self._index = index

    def match(self, words: Sequence[str], i: int) -> _Phrase | None:
        """The longest trained name or lexicon phrase starting at ``words[i]``, or None."""
        for phrase in self._index.get(words[i], ()):
            n = len(phrase.words)
            if tuple(words[i : i + n]) == phrase.words:
                return phrase
        return None

    def concept_names(self) -> list[str]:
        """The plural (or mass) name of every concept, in table order."""
        return [info["pl"] for info in self.concepts.values()]


@functools.lru_cache(maxsize=1)
def load_lexicon(path: str | None = None) -> Lexicon:
    """The shipped lexicon (read once)."""
    return Lexicon(json.loads(Path(path or LEXICON_PATH).read_text(encoding="utf-8")))


def interpret(
    text: str, unknown_words: UnknownWordsFn | None = None, lexicon: Lexicon | None = None
) -> Interpretation:
    """Clean ``text``, rewrite it into the names the model was trained with, or refuse it.

    The text is cleaned first (:func:`~.normalize.clean_text`: NFKC, invisible characters
    removed, whitespace collapsed); the cleaning is reported in :meth:`Interpretation.messages`.

    Without ``unknown_words`` (a segmenter that does not tell what it knows, such as the
    stand-ins) the text passes through unchanged; only a text without any word is refused.
    With it, a phrase of the lexicon is rewritten to its concept's trained name (number kept:
    "lake" -> "water", "houses" -> "buildings", "trucks" -> "vehicles") when the model does not
    know one of its words, or when the model saw its words only inside other trained names
    ("trees" of "trees and grass", "water tank"). Trained names are never rewritten; a
    possessive "'s" stays where it is. Words in other scripts are unknown to the model (it and
    the lexicon are English).

    Args:
        text: The user's prompt.
        unknown_words: The segmenter's ``unknown_words``, or None.
        lexicon: A table other than the shipped one (tests).

    Returns:
        The :class:`Interpretation`.

    Raises:
        InputError: ``text`` has no word at all, or (with ``unknown_words``) no word the
            model knows that names something: the message names the text and the concepts
            the model knows.
    """
    cleaned = describe_cleaning(text) or ""
    text = clean_text(text)  # the one cleaning every entry point passes (see .normalize)
    matches = require_words(text)
    if unknown_words is None:
        return Interpretation(text, text, cleaned=cleaned)
    lex = lexicon or load_lexicon()
    vocabulary = _Vocabulary(unknown_words)
    spans = [_stem_span(m) for m in matches]
    words = [text[a:b].lower() for a, b in spans]
    vocabulary.check(words)
    pieces: list[str] = []  # the model text: pieces of the user's text and the replacements
    mappings: list[Mapping] = []
    concepts: list[str] = []
    last = i = 0
    while i < len(words):
        phrase = lex.match(words, i)
        n = len(phrase.words) if phrase else 1
        start, stop = spans[i][0], spans[i + n - 1][1]
        replacement = ""
        if phrase is not None and phrase.replacement:
            if any(vocabulary.unknown(w) for w in phrase.words) or all(
                w in lex.trained_words for w in phrase.words
            ):
                replacement = phrase.replacement
        elif phrase is None and words[i] in lex.rewrites and vocabulary.unknown(words[i]):
            replacement = lex.rewrites[words[i]]
        if phrase is not None and (replacement or not phrase.replacement):
            concepts.append(phrase.concept)
        said = text[start:stop].lower()
        if replacement and replacement != said:
            pieces += [text[last:start], replacement]
            last = stop
            mappings.append(Mapping(said, replacement, phrase.concept if phrase else ""))
        i += n
    model_text = "".join([*pieces, text[last:]]) if mappings else text
    final = [model_text[a:b].lower() for a, b in map(_stem_span, words_of(model_text))]
    vocabulary.check(final)
    unknown = [w for w in dict.fromkeys(final) if vocabulary.unknown(w)]
    if all(w in unknown or w in lex.function_words for w in final):
        raise InputError(_no_known_words(text, final, set(unknown), lex, unknown_words))
    return Interpretation(
        text=text,
        model_text=model_text,
        mappings=tuple(mappings),
        unknown=tuple(unknown),
        concepts=tuple(dict.fromkeys(concepts)),
        cleaned=cleaned,
    )


def _stem_span(match: re.Match[str]) -> tuple[int, int]:
    """The word's span without a possessive "'s" (lake's -> lake)."""
    start, stop = match.span()
    return (start, stop - 2) if match.group(0).lower().endswith("'s") else (start, stop)


_MODEL_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")  # how RS2SAM2.unknown_words splits text


class _Vocabulary:
    """Which words a segmenter knows, asked in as few ``unknown_words`` calls as possible."""

    def __init__(self, unknown_words: UnknownWordsFn) -> None:
        self.unknown_words = unknown_words
        self.known: dict[str, bool] = {}

    def check(self, words: Sequence[str]) -> None:
        """Learn about ``words`` (lower case); words in other scripts are never known."""
        todo = {w: _fold(w) for w in dict.fromkeys(words) if w not in self.known}
        simple = [f for w, f in todo.items() if is_latin(w) and _MODEL_WORD.fullmatch(f)]
        reported = {u.lower() for u in self.unknown_words(" ".join(simple))} if simple else set()
        for word, folded in todo.items():
            if not is_latin(word):
                self.known[word] = False
            elif folded in simple:
                self.known[word] = folded not in reported
            else:  # apostrophes or digits mixed in: ask about the word alone
                self.known[word] = not self.unknown_words(folded)

    def unknown(self, word: str) -> bool:
        """Whether the segmenter never saw ``word`` (call :meth:`check` first)."""
        return not self.known[word]


def _fold(word: str) -> str:
    """``word`` without accents, lower case (café -> cafe)."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _no_known_words(
    text: str,
    words: Sequence[str],
    unknown: set[str],
    lex: Lexicon,
    unknown_words: UnknownWordsFn,
) -> str:
    names = lex.concept_names()
    never_seen = set(unknown_words(" ".join(names)))
    known = [n for n in names if not never_seen & set(n.split())] or names
    foreign = any(not is_latin(w) for w in words)
    why = (
        "it reads English only"
        if foreign
        else "it knows none of its words"
        if all(w in unknown for w in words)
        else "it names nothing the model was trained to find"
    )
    return (
        f"the model cannot use the text {quote_text(text)}: {why}. It was trained to find: "
        f"{', '.join(known)}; describe one of these, e.g. 'the buildings on the left'"
    )
