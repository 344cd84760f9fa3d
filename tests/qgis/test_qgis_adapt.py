"""rs2sam:adaptmodel in real QGIS: processing.run, a selection, batch-style reruns, the modeler,
bad inputs and cancel (nothing written)."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis_helpers import RED_BOX

pytestmark = pytest.mark.qgis


@pytest.fixture
def provider(qgis_processing, qgis_iface):
    """The plugin's provider registered as initProcessing() does it."""
    from qgis.core import QgsApplication

    import rs2sam_qgis

    instance = rs2sam_qgis.classFactory(None)
    instance.initProcessing()
    yield QgsApplication.processingRegistry().providerById("rs2sam")
    instance.unload()


def _examples(label_of_far: str = "") -> object:
    """A memory layer: the red square (label 'the red square') and a far-away square."""
    from qgis.core import QgsFeature, QgsGeometry, QgsRectangle, QgsVectorLayer

    layer = QgsVectorLayer("Polygon?crs=EPSG:32633&field=label:string", "examples", "memory")
    far = QgsRectangle(RED_BOX[0] + 1e5, RED_BOX[1], RED_BOX[2] + 1e5, RED_BOX[3])
    feats = []
    for rect, label in ((QgsRectangle(*RED_BOX), "the red square"), (far, label_of_far)):
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromRect(rect))
        f.setAttributes([label])
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    return layer


def _params(raster: Path, layer: object, out: Path, **kw: object) -> dict:
    params = {"INPUT": [str(raster)], "EXAMPLES": layer, "TEXT": "the red square",
              "MODEL_CONFIG": "test-tiny", "MAX_STEPS": 3, "MINUTES": 10.0, "THREADS": 1,
              "OUTPUT": str(out)}
    params.update(kw)
    return params


def test_adapt_algorithm_writes_a_checkpoint_with_provenance(provider, red_square_tif,
                                                             tmp_path) -> None:
    import processing

    from backend.model.checkpoint import read_header

    layer = _examples()
    layer.selectByIds([1])  # the red square only; the far square would be "outside"
    from qgis.core import QgsProcessingFeatureSourceDefinition

    source = QgsProcessingFeatureSourceDefinition(layer.id(), True)
    from qgis.core import QgsProject

    QgsProject.instance().addMapLayer(layer)
    try:
        out = tmp_path / "adapted.safetensors"
        result = processing.run("rs2sam:adaptmodel", _params(red_square_tif, source, out))
        assert Path(result["OUTPUT"]) == out and out.is_file()
        assert 0.0 <= result["HOLDOUT_IOU_BEFORE"] <= 100.0
        assert 0.0 <= result["HOLDOUT_IOU_AFTER"] <= 100.0
        prov = read_header(out).metadata["adaptation"]
        assert prov["texts"] == ["the red square"] and prov["examples_count"] == 1
        assert prov["steps"] == 3
        # a second run of the same parameters (as batch mode does row by row) replaces it
        out2 = tmp_path / "adapted2.safetensors"
        result = processing.run("rs2sam:adaptmodel",
                                _params(red_square_tif, source, out2, TEXT="",
                                        TEXT_FIELD="label"))
        assert out2.is_file()
        assert read_header(out2).metadata["adaptation"]["texts"] == ["the red square"]
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_adapt_algorithm_bad_inputs_write_nothing(provider, red_square_tif, tmp_path) -> None:
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    out = tmp_path / "x.safetensors"
    layer = _examples()
    cases = {
        "budget": (_params(red_square_tif, layer, out, MINUTES=0.0), "budget"),
        "no text": (_params(red_square_tif, layer, out, TEXT=""), "text"),
        "architecture": (_params(red_square_tif, layer, out, MODEL_CONFIG="lgce-tiny"),
                         "cannot be adapted"),
        "extension": (_params(red_square_tif, layer, tmp_path / "x.gpkg"), ".safetensors"),
    }
    class Capture(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.errors: list[str] = []

        def reportError(self, error: str, fatalError: bool = False) -> None:
            self.errors.append(error)

    for name, (params, words) in cases.items():
        feedback = Capture()
        with pytest.raises(QgsProcessingException) as caught:
            processing.run("rs2sam:adaptmodel", params, feedback=feedback)
        said = [str(caught.value), *feedback.errors]
        assert any(words in e for e in said), (name, said)
        assert not out.exists() and not (tmp_path / "x.gpkg").exists(), name


def test_adapt_algorithm_cancel_leaves_no_file(provider, red_square_tif, tmp_path) -> None:
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    class CancelWhenTraining(QgsProcessingFeedback):
        def setProgressText(self, text: str) -> None:
            if text.startswith("Training"):
                self.cancel()

    out = tmp_path / "c.safetensors"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run("rs2sam:adaptmodel",
                       _params(red_square_tif, _examples(), out, MAX_STEPS=50),
                       feedback=CancelWhenTraining())
    assert list(tmp_path.glob("*.safetensors")) == []


def test_adapt_algorithm_in_a_model(provider, red_square_tif, tmp_path) -> None:
    import processing
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterMultipleLayers,
        QgsProcessingParameterVectorLayer,
    )

    model = QgsProcessingModelAlgorithm("teach red", "tests")
    model.addModelParameter(QgsProcessingParameterMultipleLayers("rasters", "Rasters", 3),
                            QgsProcessingModelParameter("rasters"))
    model.addModelParameter(QgsProcessingParameterVectorLayer("examples", "Examples"),
                            QgsProcessingModelParameter("examples"))
    child = QgsProcessingModelChildAlgorithm("rs2sam:adaptmodel")
    child.setChildId("adapt")
    src = QgsProcessingModelChildParameterSource
    child.addParameterSources("INPUT", [src.fromModelParameter("rasters")])
    child.addParameterSources("EXAMPLES", [src.fromModelParameter("examples")])
    for name, value in (("TEXT", "the red square"), ("MODEL_CONFIG", "test-tiny"),
                        ("MAX_STEPS", 2), ("MINUTES", 10.0), ("THREADS", 1)):
        child.addParameterSources(name, [src.fromStaticValue(value)])
    output = QgsProcessingModelOutput("model")
    output.setChildOutputName("OUTPUT")
    child.setModelOutputs({"model": output})
    model.addChildAlgorithm(child)
    ok, errors = model.validate()
    assert ok, errors
    from qgis.core import QgsVectorFileWriter

    layer = _examples()
    layer.selectByIds([1])
    gpkg = tmp_path / "examples.gpkg"
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName, options.onlySelectedFeatures = "GPKG", True
    from qgis.core import QgsCoordinateTransformContext

    QgsVectorFileWriter.writeAsVectorFormatV2(layer, str(gpkg), QgsCoordinateTransformContext(),
                                              options)
    out = tmp_path / "from_model.safetensors"
    result = processing.run(model, {"rasters": [str(red_square_tif)], "examples": str(gpkg),
                                    "adapt:model": str(out)})
    assert Path(result["adapt:model"]).is_file()
