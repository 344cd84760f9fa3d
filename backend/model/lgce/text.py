"""LGCE's language side: tokenisers and a BERT-style (bidirectional, post-LN) text encoder.

Two tokenisers, chosen by ``LGCEConfig.tokenizer``:

* ``clip-bpe``: open_clip's bundled BPE (``[SOT] words [EOT] 0 ...``); no files needed, so the
  from-scratch configs (``lgce-tiny``, ``lgce-nano``) work anywhere open_clip does.
* ``wordpiece``: BERT's uncased WordPiece (``[CLS] words [SEP] 0 ...``). Its vocabulary lives
  in the weights, as the ``vocab_table`` buffer (one zero-padded UTF-8 row per token), so a
  checkpoint never names a file; :func:`~backend.model.lgce.pretrained.load_bert_weights`
  fills it from a local ``vocab.txt``.

The encoder (:class:`BertStyleEncoder`) follows BERT's layout (token + position + type
embeddings, LayerNorm, post-LN layers with exact GELU), so BERT-base weights map onto it one to
one. Padding never changes a caption's features: keys after the end token are masked.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError
from ...text.normalize import checked_text, quote_text
from .config import LGCEConfig

logger = logging.getLogger(__name__)

__all__ = ["BertStyleEncoder", "ClipBpeTokenizer", "WordPieceTokenizer", "make_tokenizer"]


def _check_text(text: object) -> str:
    """The cleaned caption (:func:`backend.text.normalize.checked_text`), or InputError."""
    return checked_text(text)


class ClipBpeTokenizer:
    """CLIP's BPE (open_clip's ids) with a pad mask; the batch is trimmed to its longest caption."""

    def __init__(self, context_length: int) -> None:
        from ..clip_towers.bpe import ClipBpe

        self.context_length = context_length
        self._tok = ClipBpe(context_length)

    def ids(self, word: str) -> list[int]:
        """BPE ids of one word (no start/end tokens)."""
        return list(self._tok.encode(word))

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens`` ``(N, L)`` int64 and ``pad`` ``(N, L)`` bool (True after the end token)."""
        for text in texts:
            n = len(self._tok.encode(text)) + 2
            if n > self.context_length and text != getattr(self, "_warned_text", None):
                self._warned_text = text  # once per text, not once per tile
                logger.warning(
                    "text has %d tokens, more than the model's context of %d; truncated: %s",
                    n,
                    self.context_length,
                    quote_text(text),
                )
        tokens = self._tok(list(texts)).long()
        end = tokens.argmax(dim=-1)  # EOT has the highest id of the vocabulary
        length = int(end.max()) + 1
        tokens = tokens[:, :length]
        pad = torch.arange(length)[None, :] > end[:, None]
        return tokens, pad


_PUNCT_RE = re.compile(r"(\W)", re.UNICODE)


class WordPieceTokenizer:
    """BERT uncased WordPiece: lower-case, strip accents, split punctuation, greedy longest match.

    Args:
        vocab: Tokens in id order (``[PAD]`` = 0, ``[UNK]``, ``[CLS]``, ``[SEP]`` present).
        context_length: Tokens per caption including ``[CLS]`` and ``[SEP]``.

    Raises:
        InputError: If a special token is missing from ``vocab``.
    """

    def __init__(self, vocab: Sequence[str], context_length: int) -> None:
        self.index = {tok: i for i, tok in enumerate(vocab)}
        for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
            if special not in self.index:
                raise InputError(
                    f"the WordPiece vocabulary has no {special} token; is it BERT's " "vocab.txt?"
                )
        self.context_length = context_length
        self.pad_id, self.unk_id = self.index["[PAD]"], self.index["[UNK]"]
        self.cls_id, self.sep_id = self.index["[CLS]"], self.index["[SEP]"]

    def _words(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        return [w for part in text.split() for w in _PUNCT_RE.split(part) if w.strip()]

    def ids(self, word: str) -> list[int]:
        """WordPiece ids of one word (greedy longest-match-first, ``##`` continuations)."""
        out: list[int] = []
        for w in self._words(word):
            start, pieces = 0, []
            while start < len(w):
                end = len(w)
                while end > start:
                    piece = w[start:end] if start == 0 else "##" + w[start:end]
                    if piece in self.index:
                        pieces.append(self.index[piece])
                        break
                    end -= 1
                if end == start:  # no piece matches: the whole word is unknown
                    pieces = [self.unk_id]
                    break
                start = end
            out.extend(pieces)
        return out

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens`` ``(N, L)`` int64 and ``pad`` ``(N, L)`` bool (True after ``[SEP]``)."""
        rows = []
        for text in texts:
            ids = self.ids(text)
            if len(ids) + 2 > self.context_length and text != getattr(self, "_warned_text", None):
                self._warned_text = text  # once per text, not once per tile
                logger.warning(
                    "text has %d tokens, more than the model's context of %d; truncated: %s",
                    len(ids) + 2,
                    self.context_length,
                    quote_text(text),
                )
                ids = ids[: self.context_length - 2]
            rows.append([self.cls_id, *ids, self.sep_id])
        length = max(len(r) for r in rows)
        tokens = torch.full((len(rows), length), self.pad_id, dtype=torch.int64)
        pad = torch.ones((len(rows), length), dtype=torch.bool)
        for i, r in enumerate(rows):
            tokens[i, : len(r)] = torch.tensor(r)
            pad[i, : len(r)] = False
        return tokens, pad


def encode_vocab(vocab: Sequence[str], rows: int, width: int) -> torch.Tensor:
    """Vocabulary as a ``(rows, width)`` uint8 table of zero-padded UTF-8 (for the weights).

    Raises:
        InputError: If there are more tokens than rows or a token is longer than ``width``.
    """
    if len(vocab) > rows:
        raise InputError(f"vocabulary has {len(vocab)} tokens, the model only {rows} rows")
    table = torch.zeros((rows, width), dtype=torch.uint8)
    for i, tok in enumerate(vocab):
        raw = tok.encode("utf-8")
        if not raw or len(raw) > width:
            raise InputError(
                f"vocabulary token {i} ({tok[:40]!r}) is empty or longer than " f"{width} bytes"
            )
        table[i, : len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    return table


def decode_vocab(table: torch.Tensor) -> list[str]:
    """Inverse of :func:`encode_vocab` (empty rows end the vocabulary)."""
    out = []
    for row in table.cpu().numpy():
        raw = bytes(row).rstrip(b"\0")
        if not raw:
            break
        out.append(raw.decode("utf-8", errors="replace"))
    return out


def make_tokenizer(config: LGCEConfig, vocab_table: torch.Tensor | None) -> object:
    """The tokeniser of ``config`` (WordPiece reads ``vocab_table``, the weights' buffer).

    Raises:
        InputError: WordPiece model whose vocabulary table is empty (random init, no BERT files).
    """
    if config.tokenizer == "clip-bpe":
        return ClipBpeTokenizer(config.context_length)
    vocab = decode_vocab(vocab_table) if vocab_table is not None else []
    if not vocab:
        raise InputError(
            f"{config.name}: this model has no WordPiece vocabulary (random init); initialise it "
            "from BERT files (load_bert_weights / training 'pretrained: {bert: <dir>}') or load "
            "a trained checkpoint"
        )
    return WordPieceTokenizer(vocab, config.context_length)


class _BertLayer(nn.Module):
    """Post-LN transformer layer in BERT's layout (names map onto BERT's weights)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.attn_out = nn.Linear(width, width)
        self.attn_norm = nn.LayerNorm(width, eps=1e-12)
        self.ff_in = nn.Linear(width, 4 * width)
        self.ff_out = nn.Linear(4 * width, width)
        self.ff_norm = nn.LayerNorm(width, eps=1e-12)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, L, D)``; ``bias`` ``(B, 1, 1, L)`` additive key mask."""
        b, n, d = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, h, d // h).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(b, n, d)))
        return self.ff_norm(x + self.ff_out(F.gelu(self.ff_in(x))))


class BertStyleEncoder(nn.Module):
    """Bidirectional text encoder: ``tokens (B, L), pad (B, L) -> words (B, L, D)``.

    Args:
        config: Sizes (``vocab_size``, ``context_length``, ``text_width/layers/heads``).
    """

    def __init__(self, config: LGCEConfig) -> None:
        super().__init__()
        d = config.text_width
        self.tok_embed = nn.Embedding(config.vocab_size, d)
        self.pos_embed = nn.Embedding(config.context_length, d)
        self.type_embed = nn.Embedding(2, d)
        self.embed_norm = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(
            _BertLayer(d, config.text_heads) for _ in range(config.text_layers)
        )
        for m in self.modules():  # BERT's init: N(0, 0.02), zero biases
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Word features ``(B, L, D)``; rows at padded positions are not meaningful."""
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok_embed(tokens) + self.pos_embed(pos)[None] + self.type_embed.weight[0]
        x = self.embed_norm(x)
        bias = torch.zeros(pad.shape, dtype=x.dtype, device=x.device)
        bias = bias.masked_fill(pad, -math.inf if x.dtype == torch.float32 else -1e4)
        bias = bias[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        return x
