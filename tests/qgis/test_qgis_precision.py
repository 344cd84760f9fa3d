"""The precision option in the dock and in Processing reaches the backend (issue 32)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from qgis_helpers import DEMO_RASTER

pytestmark = pytest.mark.qgis


def test_dock_offers_the_modes_and_puts_the_choice_in_the_request(
    plugin, qgis_iface, red_square_tif, tmp_path
) -> None:
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(red_square_tif), "red")
    QgsProject.instance().addMapLayer(layer)
    dock = plugin.show_dock()
    combo = dock.model_part.precision_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["auto", "fp32", "bf16", "int8"]
    assert combo.currentText() == "auto"  # the default
    dock.layer_combo.setLayer(layer)
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("layer"))
    dock.query_combo.setEditText("the red square")
    dock.output_dir_widget.setFilePath(str(tmp_path / "out"))
    assert dock.build_request().precision == "auto"
    combo.setCurrentIndex(combo.findText("int8"))
    assert dock.build_request().precision == "int8"


def test_processing_precision_reaches_the_loaded_model(provider_alg, tmp_path) -> None:
    """PRECISION=int8 with the bundled weights: the cached segmenter runs int8; a bad mode
    for this CPU (bf16 without AVX-512 BF16 / AMX) fails with the backend's sentence."""
    import processing
    from qgis.core import QgsProcessingException

    from backend.model.precision import cpu_support
    from rs2sam_qgis.models import CACHE

    raster = Path(shutil.copy(DEMO_RASTER, tmp_path))
    result = processing.run(
        "rs2sam:segmentbytext",
        {"INPUT": str(raster), "TEXT": "buildings", "THRESHOLD": 0.01, "DEVICE": "cpu",
         "PRECISION": "int8", "OUTPUT": str(tmp_path / "int8.gpkg")},
    )  # fmt: skip
    assert result["POLYGONS"] >= 1
    assert any(key[2] == "int8" and s.precision == "int8" for key, s in CACHE._items.items())
    if not cpu_support().bf16:
        with pytest.raises(QgsProcessingException, match="bf16"):
            processing.run(
                "rs2sam:segmentbytext",
                {"INPUT": str(raster), "TEXT": "buildings", "DEVICE": "cpu",
                 "PRECISION": "bf16", "OUTPUT": str(tmp_path / "bf16.gpkg")},
            )  # fmt: skip
        assert not (tmp_path / "bf16.gpkg").exists()


@pytest.fixture
def provider_alg(qgis_processing, qgis_iface):
    """The plugin's provider registered as initProcessing() does it (no GUI)."""
    from qgis.core import QgsApplication

    import rs2sam_qgis

    instance = rs2sam_qgis.classFactory(None)
    instance.initProcessing()
    yield QgsApplication.processingRegistry().providerById("rs2sam")
    instance.unload()
