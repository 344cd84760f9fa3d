"""CLIP's byte-level BPE tokeniser over open_clip's bundled merge list, without open_clip.

Token ids equal open_clip's ``SimpleTokenizer`` (``clean="lower"``): the text is repaired with
``ftfy``, HTML-unescaped twice, whitespace-collapsed and lower-cased; it is split into words,
numbers (one digit each) and punctuation runs; each piece's UTF-8 bytes are mapped to printable
characters and merged by rank. A caption becomes ``[SOT] ids [EOT] 0 ...``; a caption longer
than the context is cut and its last id set to EOT.

Printable-ASCII captions without ``&`` (most queries) skip ``ftfy`` and the ``regex`` package:
both are identities on them, and importing them costs about 0.1 s of a cold start.
"""

from __future__ import annotations

import gzip
import html
import itertools
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch

from ...errors import DependencyError
from .spec import open_clip_data_dir

__all__ = ["VOCAB_FILE", "ClipBpe", "byte_alphabet"]

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
"""The merge list shipped inside the open_clip package (OpenAI's CLIP vocabulary)."""
_N_MERGES = 49152 - 256 - 2
_SPECIALS = ("<start_of_text>", "<end_of_text>")
_PIECES = r"'s|'t|'re|'ve|'m|'ll|'d"
_PLAIN = re.compile(r"[\x20-\x25\x27-\x7e]*")  # printable ASCII except "&"
_PLAIN_SPLIT = re.compile("|".join(_SPECIALS) + "|" + _PIECES + r"|[a-z]+|[0-9]|[^\sa-z0-9]+")
_CACHE_LIMIT = 20_000


@lru_cache(maxsize=1)
def byte_alphabet() -> tuple[str, ...]:
    """Printable stand-in character of each byte value 0..255 (index = byte).

    Bytes that are visible Latin-1 characters stand for themselves; the others (controls,
    space, soft hyphen ...) take the characters from U+0100 upward, in byte order.
    """
    visible = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table: dict[int, str] = {b: chr(b) for b in visible}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return tuple(table[b] for b in range(256))


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, int], dict[str, int]]:
    """``(symbol -> id, "left right" merge -> rank)`` from open_clip's vocabulary file.

    Only the first lines of the file are used (the rest is never split).
    """
    folder = open_clip_data_dir()
    path = folder / VOCAB_FILE if folder is not None else None
    if path is None or not path.is_file():
        raise DependencyError(
            f"CLIP's BPE vocabulary ({VOCAB_FILE}) was not found: install open_clip_torch "
            "(it ships the file)"
        )
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    merges = text.split("\n", _N_MERGES + 1)[1 : _N_MERGES + 1]  # line 0 is a header
    merges = [m if m.count(" ") == 1 and m.strip() == m else " ".join(m.split()) for m in merges]
    alphabet = sorted(byte_alphabet())  # id order: the visible bytes, then the stand-ins
    symbols = [*alphabet, *(c + "</w>" for c in alphabet), *(m.replace(" ", "") for m in merges)]
    symbols.extend(_SPECIALS)
    ids = dict(zip(symbols, range(len(symbols)), strict=True))
    ranks = dict(zip(merges, range(len(merges)), strict=True))
    return ids, ranks


def _clean(text: str) -> str:
    if not _PLAIN.fullmatch(text):
        import ftfy

        text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split()).lower()


@lru_cache(maxsize=1)
def _unicode_split() -> Any:
    import regex

    letters = "|".join(_SPECIALS) + "|" + _PIECES + r"|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
    return regex.compile(letters, regex.IGNORECASE)


class ClipBpe:
    """CLIP BPE tokeniser returning open_clip's ids.

    Args:
        context_length: Columns of the token tensor (SOT and EOT included).

    Attributes:
        sot_id / eot_id: Start / end-of-text ids (49406 / 49407); EOT is the highest id.
        vocab_size: 49408.
    """

    def __init__(self, context_length: int) -> None:
        self.context_length = context_length
        self._ids, self._ranks = _tables()
        self.sot_id, self.eot_id = (self._ids[s] for s in _SPECIALS)
        self.vocab_size = len(self._ids)
        self._alphabet = byte_alphabet()
        self._cache: dict[str, list[int]] = {}

    def _merge(self, piece: str) -> list[int]:
        """Ids of one pre-split piece (its bytes already mapped to the alphabet)."""
        found = self._cache.get(piece)
        if found is not None:
            return found
        if piece in _SPECIALS:
            return [self._ids[piece]]
        parts = [*piece[:-1], piece[-1] + "</w>"]
        ranks = self._ranks
        while len(parts) > 1:
            best, best_rank = None, len(ranks)
            for pair in itertools.pairwise(parts):
                rank = ranks.get(pair[0] + " " + pair[1])
                if rank is not None and rank < best_rank:
                    best, best_rank = pair, rank
            if best is None:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):  # every occurrence, left to right, without overlap
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = [self._ids[p] for p in parts]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text`` without SOT/EOT."""
        text = _clean(text)
        split = _PLAIN_SPLIT if text.isascii() else _unicode_split()
        out: list[int] = []
        alphabet = self._alphabet
        for piece in split.findall(text):
            out.extend(self._merge("".join(alphabet[b] for b in piece.encode("utf-8"))))
        return out

    def __call__(
        self, texts: str | Sequence[str], context_length: int | None = None
    ) -> torch.Tensor:
        """``(N, context_length)`` int64: ``[SOT] ids [EOT]`` then zeros; cut ones end in EOT."""
        if isinstance(texts, str):
            texts = [texts]
        ctx = context_length or self.context_length
        out = torch.zeros(len(texts), ctx, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot_id, *self.encode(text), self.eot_id]
            if len(ids) > ctx:
                ids = ids[:ctx]
                ids[-1] = self.eot_id
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out
