"""The lexicon between the user's words and the model's (issue 16, section 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyogrio
import pytest

from backend.errors import InputError
from backend.pipeline import segment_raster
from backend.standins import RedSegmenter
from backend.text.lexicon import LEXICON_PATH, interpret, load_lexicon
from training.refer.grammar import DUBAI_VOCAB, NWPU_VOCAB

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_data as md

ROOT = Path(__file__).resolve().parents[2]
LEX = load_lexicon()
GRAMMAR_WORDS = {"the", "all", "in", "on", "of", "left", "right", "upper", "lower", "largest"}
BUNDLED_KNOWS = LEX.trained_words | GRAMMAR_WORDS
"""What a model trained like the bundled weights knows: its trained names and template words."""


def like_bundled(text: str) -> list[str]:
    """``unknown_words`` of a model that knows only ``BUNDLED_KNOWS`` (lower-cased words)."""
    words = dict.fromkeys(w.lower() for w in text.split())
    return [w for w in words if w not in BUNDLED_KNOWS]


def knows_everything(text: str) -> list[str]:
    """``unknown_words`` of a model with a full token table (random init, unpruned)."""
    return []


# --- the table -------------------------------------------------------------------------------


def test_the_table_covers_exactly_the_trained_concepts_and_names():
    trained = {**NWPU_VOCAB, **DUBAI_VOCAB}
    assert set(LEX.concepts) == set(trained)
    for concept, forms in trained.items():
        names = {n for f in ("sg", "pl", "mass") for n in forms.get(f, [])}
        assert set(LEX.concepts[concept]["trained"]) == names
        assert LEX.concepts[concept]["sg"] in names and LEX.concepts[concept]["pl"] in names
    assert not set(LEX.entries) & set(LEX.trained)  # trained names are never remapped
    assert not set(LEX.entries) & LEX.function_words
    data = json.loads(LEXICON_PATH.read_text())
    assert "WordNet 3.0" in data["source"] and "Princeton University" in data["license"]
    assert LEXICON_PATH.stat().st_size < 150_000  # small enough to ship in the plugin


def test_every_word_of_every_concept_maps_to_it():
    """Each of the ~1,200 words and phrases reaches a bundled-like model as its concept's
    trained name, in the right number ("lake" -> "water", "houses" -> "buildings")."""
    per_concept: dict[str, int] = {}
    for phrase, (concept, number, _synset) in LEX.entries.items():
        got = interpret(phrase, like_bundled)
        assert got.model_text == LEX.concepts[concept][number], phrase
        assert got.concepts == (concept,), phrase
        assert [m.concept for m in got.mappings] == [concept], phrase
        per_concept[concept] = per_concept.get(concept, 0) + 1
    # WordNet has no synonym for the two court names; every other concept has several
    assert {c for c in LEX.concepts if per_concept.get(c, 0) < 4} == {
        "tennis_court",
        "basketball_court",
    }


@pytest.mark.parametrize(
    ("said", "model_text"),
    [
        # the examples
        ("lake", "water"),
        ("the river", "the water"),
        ("ponds", "water"),
        ("the sea", "the water"),
        ("canal", "water"),
        ("houses", "buildings"),
        ("homes", "buildings"),
        ("roofs", "buildings"),
        ("cars", "cars"),  # a trained name: kept
        ("trucks", "vehicles"),
        ("vans", "vehicles"),
        ("streets", "roads"),
        ("highway", "road"),
        ("the motorway", "the road"),
        ("forest", "vegetation"),
        ("woods", "vegetation"),
        ("grass", "vegetation"),
        # spelling variants, plurals, phrases, case, hyphens, possessives
        ("harbour", "harbour"),
        ("harbor", "harbor"),
        ("ports", "harbors"),
        ("the aeroplanes", "the airplanes"),
        ("buses", "vehicles"),
        ("the swimming pools", "the water"),
        ("water tank", "storage tank"),
        ("Lakes in the upper left", "water in the upper left"),
        ("a house", "the building"),
        ("the Tennis-Court on the left", "the Tennis-Court on the left"),
        ("the lake's shore", "the water's shore"),
        ("the building in the centre", "the building in the center"),
        ("the trees", "the vegetation"),  # seen only inside "trees and grass"
        ("trees and grass", "trees and grass"),
    ],
)
def test_everyday_words_reach_the_model_as_trained_names(said, model_text):
    assert interpret(said, like_bundled).model_text == model_text


def test_mappings_are_listed_and_unknown_words_reported():
    got = interpret("the houses next to the lake", like_bundled)
    assert got.model_text == "the buildings next to the water"
    assert [str(m) for m in got.mappings] == ["houses \u2192 buildings", "lake \u2192 water"]
    assert got.concepts == ("building", "water")
    assert got.unknown == ("next", "to")
    first, second = got.messages()
    assert "'the buildings next to the water'" in first and "lake \u2192 water" in first
    assert "never saw 'next', 'to'" in second


def test_words_the_model_knows_are_not_rewritten():
    """A model with a full token table (e.g. trained on other data) keeps its own words; only
    words it saw inside longer trained names are still mapped."""
    assert interpret("the lake", knows_everything).model_text == "the lake"
    assert interpret("the trees", knows_everything).model_text == "the vegetation"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("\u6e56", "reads English only"),  # "lake" in Chinese
        ("\u0627\u0644\u0628\u062d\u064a\u0631\u0629", "reads English only"),  # Arabic
        ("\U0001f3e0\U0001f3e0", "has no words"),
        ("...?!", "has no words"),
        ("blorf", "knows none of its words"),
        ("the left", "names nothing the model was trained to find"),
    ],
)
def test_text_with_no_known_concept_is_refused(text, needle):
    with pytest.raises(InputError) as info:
        interpret(text, like_bundled)
    message = str(info.value)
    assert needle in message and repr(text) in message
    if "has no words" not in needle:
        assert "buildings" in message and "ground track fields" in message


def test_a_segmenter_without_vocabulary_gets_the_text_unchanged():
    got = interpret("the houses by the \u6e56", None)
    assert (got.model_text, got.mappings, got.unknown) == ("the houses by the \u6e56", (), ())
    with pytest.raises(InputError, match="has no words"):
        interpret("\U0001f30a", None)


def test_the_bundled_weights_vocabulary():
    """The real ``Segmenter.unknown_words`` of the shipped weights gives the same answers."""
    from backend import load_segmenter

    seg = load_segmenter(device="cpu")
    got = interpret("the houses by the lake", seg.unknown_words)
    assert got.model_text == "the buildings by the water"
    assert got.unknown == ("by",)
    assert interpret("trucks", seg.unknown_words).model_text == "vehicles"
    for text in ("\u623f\u5b50", "\U0001f697", "zzyzx"):
        with pytest.raises(InputError):
            interpret(text, seg.unknown_words)


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").exists(), reason="no WordNet")
def test_the_committed_table_is_what_the_build_script_makes(tmp_path):
    out = tmp_path / "lexicon.json"
    proc = subprocess.run(
        [sys.executable, "tools/build_lexicon.py", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text()) == json.loads(LEXICON_PATH.read_text())


# --- through the pipeline --------------------------------------------------------------------


class VocabularyRed(RedSegmenter):
    """Red pixels, a bundled-like vocabulary, and a record of the texts it was given."""

    def __init__(self) -> None:
        super().__init__(image_size=128)
        self.texts: list[str] = []

    def unknown_words(self, text: str) -> list[str]:
        return like_bundled(text)

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        self.texts.append(text)
        return super().predict(image, text)


def red_raster(path: Path) -> Path:
    image = md.paint(md.background(128, 128), md.rect_mask(128, 128, 20, 30, 60, 90))
    return md.write_geotiff(path, image, transform=md.utm_transform())


def test_the_mapping_reaches_warnings_attributes_and_the_file(tmp_path):
    path = red_raster(tmp_path / "in.tif")
    seg = VocabularyRed()
    out = tmp_path / "out.gpkg"
    result = segment_raster(path, "the red houses", seg, out_path=out)
    assert set(seg.texts) == {"the red buildings"}
    assert result.prompt_used == "the red buildings"
    assert any("houses \u2192 buildings" in w for w in result.warnings)
    assert any("never saw 'red'" in w for w in result.warnings)
    assert len(result) == 1
    assert result.attributes[0]["prompt"] == "the red houses"
    assert result.attributes[0]["prompt_used"] == "the red buildings"
    info = pyogrio.read_info(out)
    names = list(info["fields"])
    _, _, _, fields = pyogrio.raw.read(out)
    assert list(fields[names.index("prompt_used")]) == ["the red buildings"]
    assert pyogrio.read_info(out)["layer_metadata"]["prompt_used"] == "the red buildings"


def test_no_known_words_means_no_model_call_and_no_file(tmp_path):
    path = red_raster(tmp_path / "in.tif")
    seg = VocabularyRed()
    out = tmp_path / "out.gpkg"
    for text in ("\u7ea2\u8272\u7684\u623f\u5b50", "\U0001f3e0", "!!!", "blorf"):
        with pytest.raises(InputError):
            segment_raster(path, text, seg, out_path=out)
    assert seg.calls == 0 and not out.exists()
    plain = segment_raster(path, "\u7ea2\u8272", RedSegmenter(image_size=128))  # no vocabulary
    assert plain.prompt_used == "\u7ea2\u8272" and plain.warnings == []
