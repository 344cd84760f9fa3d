"""backend.model.clip_towers.bpe: token ids equal open_clip's tokenizer on hostile text."""

from __future__ import annotations

import html
import random

import pytest
import torch

from backend.model.clip_towers.bpe import ClipBpe

HOSTILE = [
    "",
    " ",
    "\t\n\r ",
    "the buildings",
    "The BUILDINGS",
    "  the   red\troofs \n",
    "roofs, roads & rivers",
    "fish &amp; chips",
    "&amp;amp; twice",
    "&lt;b&gt;bold&lt;/b&gt;",
    "&#39;quoted&#39;",
    "&nbsp;space",
    "&",
    "&;",
    "a&b",
    "<b>html</b> tags",
    "café crème brûlée",
    "naïve façade",
    "Ærø Øresund straße",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ",
    "ﬁsh ﬂat ligatures",
    "“curly” ‘quotes’",
    "em—dash – en",
    "mojibake: cafÃ©",
    "Â£100",
    "日本の建物",
    "Москва река",
    "مبنى أحمر",
    "हिन्दी पाठ",
    "Ελληνικά κτίρια",
    "emoji 🏠🏢🚗 houses",
    "👨‍👩‍👧 family",
    "🇫🇷 flag",
    "zero\u200bwidth",
    "soft\u00adhyphen",
    "bell\x07char",
    "esc\x1b[31mred",
    "nul\x00byte",
    "line\u2028sep",
    "tab\x0bvertical",
    "don't can't we'll they're I'm he'd she's",
    "'s 't 're",
    "123 4567 89.5 m²",
    "½ ⅓ Ⅻ ²³ numbers",
    "a_b_c snake_case",
    "!!!???...;;;",
    "----",
    "x" * 300,
    " ".join(["roof"] * 100),
    "<start_of_text> and <end_of_text> tokens",
    "İstanbul DİYARBAKIR",
    "ǅ titlecase Ǆ",
]


@pytest.fixture(scope="module")
def theirs():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=77)


@pytest.mark.parametrize("ctx", [16, 32, 77])
def test_ids_equal_open_clip_on_hostile_text(theirs, ctx: int) -> None:
    ours = ClipBpe(ctx)
    expected = theirs(HOSTILE, context_length=ctx)
    got = ours(HOSTILE)
    assert got.dtype == torch.long and got.shape == (len(HOSTILE), ctx)
    for text, a, b in zip(HOSTILE, got, expected, strict=True):
        assert torch.equal(a, b), repr(text)
    assert got[HOSTILE.index("x" * 300), -1] == ours.eot_id == 49407  # cut, EOT last


def test_encode_equals_open_clip_and_handles_a_single_string(theirs) -> None:
    ours = ClipBpe(77)
    for text in HOSTILE:
        assert ours.encode(text) == theirs.encode(text), repr(text)
    assert torch.equal(ours("the red roofs"), theirs("the red roofs"))
    assert ours.vocab_size == 49408 and ours.sot_id == 49406


def test_random_ascii_equals_open_clip(theirs) -> None:
    """The printable-ASCII fast path (no ftfy, stdlib ``re``) gives open_clip's ids."""
    rng = random.Random(0)
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + ["'s", "'ll", "  ", "\t", "&amp;"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    ours = ClipBpe(77)
    assert torch.equal(ours(texts), theirs(texts))


def test_fast_path_skips_only_what_is_an_identity() -> None:
    """ftfy and html.unescape change no printable-ASCII text without '&'."""
    import ftfy

    rng = random.Random(1)
    printable = [chr(c) for c in range(0x20, 0x7F) if chr(c) != "&"]
    for _ in range(300):
        text = "".join(rng.choice(printable) for _ in range(rng.randint(0, 60)))
        assert ftfy.fix_text(text) == text and html.unescape(text) == text, repr(text)
