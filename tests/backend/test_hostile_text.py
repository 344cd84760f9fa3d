"""Hostile suite, second round (issue 25): invisible characters, huge prompts, ``--bbox -inf``.

The text is cleaned once (NFKC, Unicode format characters removed, whitespace collapsed) on
every way in: the pipeline (API, CLI, batch), ``Segmenter.predict`` and the tokeniser of every
architecture; a hostile text gives exactly what its visible text gives, with one warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from batch_data import ARGS, write_raster
from test_batch import _features

from backend.cli import main
from backend.errors import InputError
from backend.pipeline import segment_raster
from backend.standins import RedSegmenter
from backend.text.lexicon import interpret
from backend.text.normalize import checked_text, clean_text, describe_cleaning, quote_text

PLAIN = "the buildings"
HOSTILE = "the \u202ebuildings\u202c \u200b\ufeff"  # the case: bidi, ZWSP, BOM
VARIANTS = [
    HOSTILE,
    "\ufeffthe build\u00adings",  # BOM, soft hyphen
    "the\u2028buildings\u00a0",  # line separator, no-break space
    "ｔｈｅ　ｂｕｉｌｄｉｎｇｓ",  # full-width letters and ideographic space (NFKC)
    "the \u2066build\u200dings\u2069\x00\x1b",  # isolates, ZWJ, NUL, ESC
    "the bu\U000e0041ildings",  # a tag character
]


@pytest.fixture(scope="module")
def raster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "r.tif"
    write_raster(path, 0)
    return path


# ------------------------------------------------------------------ the one cleaning
@pytest.mark.parametrize("text", VARIANTS)
def test_every_hostile_variant_cleans_to_the_visible_text(text: str) -> None:
    assert clean_text(text) == PLAIN
    assert clean_text(clean_text(text)) == PLAIN  # idempotent: cleaning twice is harmless
    assert checked_text(text) == PLAIN
    prompt = interpret(text)
    assert prompt.model_text == PLAIN


def test_the_warning_names_what_was_removed() -> None:
    note = describe_cleaning(HOSTILE)
    assert note is not None and "4 invisible characters removed" in note
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in note and "U+200B ZERO WIDTH SPACE" in note
    assert note.endswith("'the buildings'")
    assert describe_cleaning("  the   buildings ") is None  # whitespace only: no warning
    assert "NFKC" in (describe_cleaning("ｔｈｅ") or "")
    assert interpret(HOSTILE).messages()[0] == note


@pytest.mark.parametrize("text", ["\u200b\u200b", "\ufeff \u202e", "\x00"])
def test_a_text_of_invisible_characters_only_is_refused(text: str) -> None:
    with pytest.raises(InputError, match="empty or whitespace"):
        checked_text(text)
    with pytest.raises(InputError, match="has no words"):
        interpret(text)


def test_quotes_of_long_texts_are_short() -> None:
    long = "the buildings " * 10_000
    quoted = quote_text(long)
    assert len(quoted) < 100 and "140,000 characters" in quoted
    assert quote_text("short") == "'short'"


# ------------------------------------------------------------------ entry points
class Recorder(RedSegmenter):
    """The red stand-in, remembering every text it was given."""

    def __init__(self) -> None:
        super().__init__(image_size=128)
        self.texts: list[str] = []

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        self.texts.append(text)
        return super().predict(image, text)


def test_segment_raster_gives_the_model_the_visible_text_and_warns(raster: Path) -> None:
    hostile, plain = Recorder(), Recorder()
    got = segment_raster(raster, HOSTILE, hostile, gsd_m=None, tile_px=128)
    ref = segment_raster(raster, PLAIN, plain, gsd_m=None, tile_px=128)
    assert set(hostile.texts) == {PLAIN} == set(plain.texts)
    assert [p.wkb for p in got.polygons] == [p.wkb for p in ref.polygons]
    assert got.warnings[0] == describe_cleaning(HOSTILE) and not ref.warnings


def test_cli_segment_and_batch_warn_once_and_match_the_plain_text(
    raster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--standin", "red", "--quiet", "--gsd", "native", "--tile-px", "128"]
    for name, text in (("hostile", HOSTILE), ("plain", PLAIN)):
        code = main(["segment", str(raster), "--text", text, "--out",
                     str(tmp_path / f"{name}.gpkg"), *common])  # fmt: skip
        assert code == 0
    _, err = capsys.readouterr()
    assert _features(tmp_path / "hostile.gpkg") != []
    hostile = [(w, {k: v for k, v in r.items() if k != "prompt"})
               for w, r in _features(tmp_path / "hostile.gpkg")]  # fmt: skip
    plain = [(w, {k: v for k, v in r.items() if k != "prompt"})
             for w, r in _features(tmp_path / "plain.gpkg")]  # fmt: skip
    assert hostile == plain
    code = main(["batch", str(raster), "--text", HOSTILE, "--out", str(tmp_path / "job"),
                 "--standin", "red", "--quiet", *ARGS])  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0
    assert json.loads(out)["warnings"] == [describe_cleaning(HOSTILE)]


@pytest.mark.parametrize("config", ["test-tiny", "lgce-tiny"])
def test_every_tokeniser_and_predict_see_the_visible_text(
    config: str, caplog: pytest.LogCaptureFixture
) -> None:
    from backend import load_segmenter

    seg = load_segmenter(config=config, device="cpu")
    tokens = [seg.model.tokenize([t])[0] for t in (PLAIN, *VARIANTS)]
    assert all(t.tolist() == tokens[0].tolist() for t in tokens)
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING):
        hostile = seg.predict(image, HOSTILE)
    assert "the text was cleaned before use" in caplog.text
    np.testing.assert_array_equal(hostile, seg.predict(image, PLAIN))


def test_the_published_tokeniser_sees_the_visible_text() -> None:
    pytest.importorskip("sentencepiece")
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "model"))
    from official_release import train_spm

    from backend.model.official.model import build_official_model

    model = build_official_model("official-tiny", tokenizer_model=train_spm(), seed=3)
    ids = [model.tokenize([t])[0].tolist() for t in (PLAIN, *VARIANTS)]
    assert all(i == ids[0] for i in ids)


def test_a_huge_prompt_is_quoted_by_a_short_prefix(
    raster: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from backend import load_segmenter

    seg = load_segmenter(config="test-tiny", device="cpu")
    huge = "the red buildings " * 6000  # about 100 kB
    with caplog.at_level(logging.WARNING):
        seg.model.tokenize([huge])
    assert "truncated" in caplog.text
    assert all(len(r.getMessage()) < 300 for r in caplog.records), caplog.text


# ------------------------------------------------------------------ --bbox -inf / -nan
@pytest.mark.parametrize(
    "bbox", ["-inf,-inf,inf,inf", "-nan,0,1,1", "-Infinity,0,1,1", "-NaN,-1,1,1"]
)
def test_non_finite_bboxes_get_the_finite_numbers_message(
    raster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], bbox: str
) -> None:
    out = tmp_path / "o.gpkg"
    code = main(["segment", str(raster), "--text", "red", "--out", str(out), "--standin",
                 "red", "--bbox", bbox])  # fmt: skip
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "must be 4 finite numbers" in lines[0] and "expected one argument" not in err
    assert not out.exists()
