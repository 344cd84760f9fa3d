"""backend.quality: per-concept notes from the shipped table; nothing for unknown models."""

from __future__ import annotations

import pytest

from backend.quality import concept_note, concepts_in, load_quality_table

TABLE = {
    "format": 1,
    "models": {
        "abc": {
            "label": "the bundled model",
            "weak_below_miou": 40.0,
            "concepts": {
                "building": {"set": "dubai", "split": "val", "n": 120, "mIoU": 61.2, "oIoU": 70.0},
                "road": {"set": "dubai", "split": "val", "n": 80, "mIoU": 21.5, "oIoU": 30.1},
                "water": {"set": "dubai", "split": "val", "n": 90, "mIoU": 55.0, "oIoU": 80.0},
            },
            "failure_cases": {"water": "dark or green water is often missed"},
        }
    },
}


def test_concepts_in_finds_trained_names_and_synonyms() -> None:
    assert concepts_in("the buildings next to the lake") == ("building", "water")
    assert concepts_in("the river") == ("water",)
    assert concepts_in("the second ship from the left") == ("ship",)
    assert concepts_in("zzz qqq") == ()


def test_strong_concept_gets_its_numbers_and_is_not_weak() -> None:
    note = concept_note("abc", ["building"], TABLE)
    assert note is not None and not note.weak
    assert note.text == (
        "The bundled model on 'buildings': mIoU 61.2 measured on the dubai val split "
        "(n=120 expressions naming it)."
    )


def test_weak_concept_by_number_and_by_known_failure() -> None:
    road = concept_note("abc", ["road"], TABLE)
    assert road is not None and road.weak and "mIoU 21.5" in road.text
    water = concept_note("abc", ["water"], TABLE)
    assert water is not None and water.weak  # strong on its val split, but a known failure
    assert "mIoU 55.0" in water.text and "known failure: dark or green water" in water.text


def test_unknown_model_or_concept_says_nothing() -> None:
    assert concept_note("not-in-the-table", ["building"], TABLE) is None
    assert concept_note("abc", ["airplane"], TABLE) is None
    assert concept_note("abc", [], TABLE) is None


def test_shipped_table_is_keyed_by_the_bundled_weights() -> None:
    import re
    from pathlib import Path

    card = (Path(__file__).resolve().parents[2] / "docs" / "model_card.md").read_text()
    sha = re.search(r"weights sha256[^`\n]*`([0-9a-f]{64})`", card)
    assert sha is not None
    models = load_quality_table()["models"]
    if sha.group(1) not in models:
        pytest.fail("backend/weights/concept_quality.json has no entry for the bundled weights")
    entry = models[sha.group(1)]
    assert entry["measured_by"].startswith("python tools/concept_quality.py")
    for concept, row in entry["concepts"].items():
        assert row["split"] == "val" and row["n"] > 0 and 0 <= row["mIoU"] <= 100, concept
    assert "water" in entry["failure_cases"]
