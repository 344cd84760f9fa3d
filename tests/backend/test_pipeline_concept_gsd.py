"""Issue 16: with gsd_m="auto" the working resolution follows the prompt's concept when the
checkpoint stores one (metadata ``inference.gsd_m_by_concept``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from backend.model.segmenter import _concept_gsd
from backend.pipeline import segment_raster
from backend.standins import RedSegmenter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_data as md


class ConceptAware(RedSegmenter):
    """A stand-in that knows every word and has per-concept resolutions, like a checkpoint."""

    gsd_m_by_concept: ClassVar[dict[str, float]] = {"vehicle": 0.25, "water": 1.0, "building": 0.5}

    def unknown_words(self, text: str) -> list[str]:
        return []

    def gsd_m_for(self, concepts):
        found = [self.gsd_m_by_concept[c] for c in concepts if c in self.gsd_m_by_concept]
        return min(found) if found else self.gsd_m


@pytest.fixture(scope="module")
def raster(tmp_path_factory):
    image = md.paint(md.background(128, 128), md.rect_mask(128, 128, 20, 30, 60, 90))
    path = tmp_path_factory.mktemp("gsd") / "r.tif"
    return md.write_geotiff(path, image, transform=md.utm_transform(0.5))


@pytest.mark.parametrize(
    ("text", "gsd"),
    [("the cars", 0.25), ("the water", 1.0), ("the buildings", 0.5), ("the red thing", 2.0)],
)
def test_auto_working_resolution_follows_the_concept(raster, text, gsd):
    seg = ConceptAware(image_size=64, gsd_m=2.0)
    result = segment_raster(raster, text, seg)
    assert result.gsd_m == pytest.approx(gsd)
    assert len(result) == 1 and result.attributes[0]["gsd_m"] == pytest.approx(gsd)


def test_an_explicit_resolution_wins(raster):
    result = segment_raster(raster, "the cars", ConceptAware(image_size=64, gsd_m=2.0), gsd_m=1.5)
    assert result.gsd_m == pytest.approx(1.5)


def test_stored_table_is_sanitised():
    meta = {"inference": {"gsd_m_by_concept": {"vehicle": 0.25, "x": "0.3", "y": 1e9, "z": True}}}
    assert _concept_gsd(meta) == {"vehicle": 0.25}
    assert _concept_gsd({}) == {} and _concept_gsd({"inference": []}) == {}
    assert np.isfinite(list(_concept_gsd(meta).values())).all()
