"""XLM-R-style tokeniser over a sentencepiece model, with the published test path's ids.

The published code tokenises with ``XLMRobertaTokenizer`` (BEiT-3's ``beit3.spm``, saved next to
the weights as ``sentencepiece.bpe.model``) and then sets ``pad_token = unk_token``. The ids are
the fairseq convention:

* ``<s>`` = 0, ``<pad>`` = 1 (never produced), ``</s>`` = 2, ``<unk>`` = 3;
* a sentencepiece piece with id ``k > 0`` gets ``k + 1``; sentencepiece's unknown piece (0)
  becomes ``<unk>`` = 3;
* ``<mask>`` = pieces + 1 and the added ``[SEG]`` = pieces + 2 (in the table, never produced).

A caption is ``[<s>] + pieces + [</s>]``; a batch is right-padded with the pad id, which is
``<unk>`` (3), and the padding mask is ``ids == 3``: exactly the published behaviour, so a real
``<unk>`` inside a caption is masked like padding (:meth:`XLMRTokenizer.unknown_words` reports
such words). The published test path never truncates; BEiT-3's text position table holds
``text_positions - 2`` tokens, so longer captions are cut to that (``</s>`` kept) with a warning.

Known difference: the Hugging Face tokeniser also splits out the literal strings ``<s>``,
``</s>``, ``<unk>``, ``<pad>``, ``<mask>`` and ``[SEG]`` typed inside a caption; here they are
ordinary text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import torch

from ...errors import DependencyError, InputError
from ...text.normalize import quote_text

logger = logging.getLogger(__name__)

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "UNK_ID", "XLMRTokenizer", "train_toy_model"]

BOS_ID = 0
EOS_ID = 2
UNK_ID = 3
PAD_ID = UNK_ID  # the published code pads with <unk>
FAIRSEQ_OFFSET = 1
SENTENCEPIECE_PIP = "sentencepiece==0.2.3"

_TOY_SENTENCES = (
    "the white building next to the road",
    "the red roofs of the houses in the north",
    "a large airplane parked at the airport",
    "the ship in the harbor on the left",
    "two storage tanks near the river",
    "the vehicle on the bridge over the water",
    "a baseball field and a tennis court",
    "the stadium in the middle of the image",
    "green trees along the highway",
    "the ground track field at the bottom right",
    "small cars in the parking lot",
    "the dam across the lake",
    "a windmill on the hill",
    "the chimney of the factory",
    "the golf field with sand bunkers",
)


def _sentencepiece() -> object:
    try:
        import sentencepiece
    except ImportError:
        raise DependencyError(
            "the published RS2-SAM 2 model needs the 'sentencepiece' package; install it with "
            f"pip install {SENTENCEPIECE_PIP} (or pip install '.[official]')"
        ) from None
    return sentencepiece


class XLMRTokenizer:
    """Captions → BEiT-3 token ids, as the published test path makes them.

    Args:
        model_bytes: A serialised sentencepiece model (``sentencepiece.bpe.model``).
        max_tokens: Most tokens per caption including ``<s>`` and ``</s>`` (>= 3).

    Raises:
        InputError: If the bytes are not a sentencepiece model.
        DependencyError: If sentencepiece is not installed.
    """

    def __init__(self, model_bytes: bytes, *, max_tokens: int) -> None:
        spm = _sentencepiece()
        self._sp = spm.SentencePieceProcessor()  # type: ignore[attr-defined]
        try:
            self._sp.LoadFromSerializedProto(bytes(model_bytes))
        except (RuntimeError, OSError, TypeError) as err:
            raise InputError(f"the tokeniser model is not a sentencepiece model: {err}") from None
        if max_tokens < 3:
            raise InputError(f"max_tokens must be >= 3 (<s>, a piece, </s>), got {max_tokens}")
        self.max_tokens = int(max_tokens)

    @property
    def pieces(self) -> int:
        """Pieces of the sentencepiece model."""
        return int(self._sp.GetPieceSize())

    @property
    def mask_id(self) -> int:
        """Id of ``<mask>`` (after every piece)."""
        return self.pieces + FAIRSEQ_OFFSET

    @property
    def seg_id(self) -> int:
        """Id of the added ``[SEG]`` token (never produced for a caption)."""
        return self.pieces + FAIRSEQ_OFFSET + 1

    @property
    def table_rows(self) -> int:
        """Text-embedding rows the ids need (``[SEG]`` included)."""
        return self.seg_id + 1

    def piece_ids(self, text: str) -> list[int]:
        """Ids of the pieces of ``text`` (no ``<s>``/``</s>``)."""
        return [i + FAIRSEQ_OFFSET if i else UNK_ID for i in self._sp.EncodeAsIds(text)]

    def encode(self, text: str) -> list[int]:
        """``[<s>] + pieces + [</s>]``, cut to :attr:`max_tokens` (``</s>`` kept) with a warning."""
        ids = [BOS_ID, *self.piece_ids(text), EOS_ID]
        if len(ids) > self.max_tokens:
            if text != getattr(self, "_warned_text", None):  # once per text, not per tile
                self._warned_text = text
                logger.warning(
                    "text has %d tokens, more than the model's %d; truncated: %s",
                    len(ids),
                    self.max_tokens,
                    quote_text(text),
                )
            ids = [*ids[: self.max_tokens - 1], EOS_ID]
        return ids

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenise a batch.

        Returns:
            ``ids`` ``(N, L)`` int64 right-padded with :data:`PAD_ID` to the longest caption,
            and ``pad`` ``(N, L)`` bool, True where ``ids == PAD_ID`` (the published mask).
        """
        rows = [self.encode(t) for t in texts]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), PAD_ID, dtype=torch.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
        return ids, ids == PAD_ID

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` that contain a piece the vocabulary lacks (``<unk>``, masked out)."""
        words = dict.fromkeys(w.lower() for w in re.findall(r"\S+", text))
        return [w for w in words if UNK_ID in self.piece_ids(w)]


def train_toy_model(vocab_size: int = 120) -> bytes:
    """A small sentencepiece model trained on a few fixed captions (random-init models only).

    Random-init builds (tests, timing) have no published tokeniser; this one gives them real
    ids. Training is single-threaded on fixed input, so the bytes are the same every time.

    Args:
        vocab_size: Pieces to aim for (fewer if the captions do not support that many).

    Returns:
        The serialised model.
    """
    import io

    spm = _sentencepiece()
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(  # type: ignore[attr-defined]
        sentence_iterator=iter(_TOY_SENTENCES),
        model_writer=out,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    return out.getvalue()
