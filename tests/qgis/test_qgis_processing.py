"""rs2sam:segmentbytext through processing.run, the modeler API and qgis_process.bin."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from qgis_helpers import DEMO_RASTER, RED_AREA_M2, RED_BOX, card_weights_sha256

pytestmark = pytest.mark.qgis

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"


@pytest.fixture
def provider(qgis_processing, qgis_iface, monkeypatch):
    """The plugin's provider registered as initProcessing() does it (no GUI)."""
    from qgis.core import QgsApplication

    import rs2sam_qgis

    instance = rs2sam_qgis.classFactory(None)  # like qgis_process: no iface
    instance.initProcessing()
    yield QgsApplication.processingRegistry().providerById("rs2sam")
    instance.unload()


def _read(path: Path):
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(str(path), "out", "ogr")
    assert layer.isValid(), path
    return layer


def test_processing_run_with_standin_writes_the_red_square(
    provider, red_square_tif, tmp_path
) -> None:
    import processing
    from qgis.core import QgsGeometry, QgsRectangle

    out = tmp_path / "out.gpkg"
    result = processing.run(
        "rs2sam:segmentbytext",
        {
            "INPUT": str(red_square_tif),
            "TEXT": "the red square",
            "MODEL_CONFIG": "standin:red",
            "THRESHOLD": 0.5,
            "DEVICE": "cpu",
            "OUTPUT": str(out),
        },
    )
    assert Path(result["OUTPUT"]) == out and result["POLYGONS"] == 1
    assert result["AREA_M2"] == pytest.approx(RED_AREA_M2, rel=2e-3)
    layer = _read(out)
    assert layer.crs().authid() == "EPSG:32633" and layer.featureCount() == 1
    feature = next(layer.getFeatures())
    assert (
        feature.geometry().symDifference(QgsGeometry.fromRect(QgsRectangle(*RED_BOX))).area() < 1e-6
    )
    for name in ("prompt", "score", "area_m2", "model", "checkpoint_sha256"):
        assert layer.fields().indexOf(name) >= 0, name
    assert feature["prompt"] == "the red square"


def test_processing_run_without_checkpoint_uses_the_bundled_weights(provider, tmp_path) -> None:
    """No CHECKPOINT (and no developer model): the bundled weights, on the real demo GeoTIFF;
    every feature says model `nano` and the weights sha256 of docs/model_card.md."""
    import processing

    raster = Path(shutil.copy(DEMO_RASTER, tmp_path))  # QGIS may write a .aux.xml next to it
    out = tmp_path / "default.gpkg"
    result = processing.run(
        "rs2sam:segmentbytext",
        {
            "INPUT": str(raster),
            "TEXT": "buildings",
            "THRESHOLD": 0.01,  # any polygon will do: this checks wiring, not quality
            "DEVICE": "cpu",
            "OUTPUT": str(out),
        },
    )
    assert Path(result["OUTPUT"]) == out and result["POLYGONS"] >= 1
    layer = _read(out)
    assert layer.crs().authid() == "EPSG:26911"
    assert layer.featureCount() == result["POLYGONS"]
    features = list(layer.getFeatures())
    assert {f["model"] for f in features} == {"nano"}
    assert {f["checkpoint_sha256"] for f in features} == {card_weights_sha256()}


def test_processing_reports_the_lexicon_and_refuses_unusable_text(provider, tmp_path) -> None:
    """'lake' is not in the bundled weights' training captions: the log says the model got
    'water'; a prompt in another script fails with a message naming it, and writes nothing."""
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    class Capture(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.warnings = []

        def pushWarning(self, warning):
            self.warnings.append(warning)

    raster = Path(shutil.copy(DEMO_RASTER, tmp_path))
    feedback = Capture()
    processing.run(
        "rs2sam:segmentbytext",
        {"INPUT": str(raster), "TEXT": "the lake", "DEVICE": "cpu",
         "OUTPUT": str(tmp_path / "lake.gpkg")},
        feedback=feedback,
    )
    assert [w for w in feedback.warnings if "lake \u2192 water" in w], feedback.warnings
    out = tmp_path / "house.gpkg"
    with pytest.raises(QgsProcessingException, match="reads English only"):
        processing.run(
            "rs2sam:segmentbytext",
            {"INPUT": str(raster), "TEXT": "\u623f\u5b50", "DEVICE": "cpu", "OUTPUT": str(out)},
            feedback=Capture(),
        )
    assert not out.exists()


def test_processing_extent_min_area_and_other_formats(provider, red_square_tif, tmp_path) -> None:
    import processing

    far = f"{RED_BOX[2] + 2},{RED_BOX[2] + 20},{RED_BOX[1]},{RED_BOX[3]} [EPSG:32633]"
    empty = processing.run(
        "rs2sam:segmentbytext",
        {
            "INPUT": str(red_square_tif),
            "TEXT": "red",
            "EXTENT": far,
            "MODEL_CONFIG": "standin:red",
            "OUTPUT": str(tmp_path / "empty.gpkg"),
        },
    )
    assert empty["POLYGONS"] == 0 and _read(tmp_path / "empty.gpkg").featureCount() == 0
    small = processing.run(
        "rs2sam:segmentbytext",
        {
            "INPUT": str(red_square_tif),
            "TEXT": "red",
            "MIN_AREA": 300.0,
            "MODEL_CONFIG": "standin:red",
            "OUTPUT": str(tmp_path / "small.gpkg"),
        },
    )
    assert small["POLYGONS"] == 0
    geojson = processing.run(
        "rs2sam:segmentbytext",
        {
            "INPUT": str(red_square_tif),
            "TEXT": "red",
            "MODEL_CONFIG": "standin:red",
            "OUTPUT": str(tmp_path / "out.geojson"),
        },
    )
    layer = _read(Path(geojson["OUTPUT"]))
    assert layer.featureCount() == 1 and layer.crs().authid() == "EPSG:32633"


def test_processing_gsd_sets_the_working_resolution(provider, red_square_tif, tmp_path) -> None:
    """GSD resamples before the model: the gsd_m field says so and the square stays found."""
    import processing

    runs = {}
    for gsd in (0.0, 2.0):
        out = tmp_path / f"gsd_{gsd:g}.gpkg"
        processing.run(
            "rs2sam:segmentbytext",
            {
                "INPUT": str(red_square_tif),
                "TEXT": "red",
                "GSD": gsd,
                "MODEL_CONFIG": "standin:red",
                "OUTPUT": str(out),
            },
        )
        feats = list(_read(out).getFeatures())
        assert len(feats) == 1
        runs[gsd] = feats[0]
    # the stand-in has no gsd_m: native pixels, 1 m in the CRS (1.0004 m true ground size)
    assert runs[0.0]["gsd_m"] == pytest.approx(1.0, rel=1e-3)
    assert runs[2.0]["gsd_m"] == pytest.approx(2.0)
    # 16 x 16 m square: at 2 m/px its edges land on the 2 m grid, still 256 m² within a pixel
    assert runs[2.0]["area_m2"] == pytest.approx(256.0, abs=2 * 16 * 2.0)


def test_processing_aoi_polygons_in_another_crs(provider, red_square_tif, tmp_path) -> None:
    """AOI: a polygon layer in EPSG:4326 covering the left half of the red square."""
    import processing
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsFeature,
        QgsGeometry,
        QgsProject,
        QgsRectangle,
        QgsVectorLayer,
    )

    half_x = (RED_BOX[0] + RED_BOX[2]) / 2
    left = QgsGeometry.fromRect(
        QgsRectangle(RED_BOX[0] - 5, RED_BOX[1] - 5, half_x, RED_BOX[3] + 5)
    )
    left = QgsGeometry.fromPolygonXY(left.densifyByCount(20).asPolygon())
    to_4326 = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:32633"),
        QgsCoordinateReferenceSystem("EPSG:4326"),
        QgsProject.instance(),
    )
    left.transform(to_4326)
    aoi = QgsVectorLayer("Polygon?crs=EPSG:4326", "aoi", "memory")
    feature = QgsFeature()
    feature.setGeometry(left)
    aoi.dataProvider().addFeatures([feature])
    result = processing.run(
        "rs2sam:segmentbytext",
        {
            "INPUT": str(red_square_tif),
            "TEXT": "red",
            "AOI": aoi,
            "MODEL_CONFIG": "standin:red",
            "OUTPUT": str(tmp_path / "aoi.gpkg"),
        },
    )
    assert result["POLYGONS"] == 1
    assert result["AREA_M2"] == pytest.approx(RED_AREA_M2 / 2, rel=0.03)
    box = next(_read(tmp_path / "aoi.gpkg").getFeatures()).geometry().boundingBox()
    assert box.xMinimum() == pytest.approx(RED_BOX[0]) and box.xMaximum() == pytest.approx(
        half_x, abs=1.0
    )


def test_processing_errors_are_reported_and_write_nothing(
    provider, red_square_tif, tmp_path
) -> None:
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    class Capture(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.errors = []

        def reportError(self, error, fatalError=False):
            self.errors.append(error)

    base = {"INPUT": str(red_square_tif), "OUTPUT": str(tmp_path / "x.gpkg")}
    cases = [
        ({"TEXT": "  ", "MODEL_CONFIG": "standin:red"}, "TEXT is empty"),
        (
            {"TEXT": "red", "CHECKPOINT": str(tmp_path / "missing.safetensors")},
            "Checkpoint file not found",
        ),
        ({"TEXT": "red", "MODEL_CONFIG": "standin:nonsense"}, "Unknown stand-in"),
        (
            {"TEXT": "red", "MODEL_CONFIG": "standin:red", "EXTENT": "0,10,0,10 [EPSG:32633]"},
            "EXTENT does not overlap 'red_square'",
        ),
    ]
    for params, expected in cases:
        feedback = Capture()
        with pytest.raises(QgsProcessingException):
            processing.run("rs2sam:segmentbytext", {**base, **params}, feedback=feedback)
        assert any(expected in e for e in feedback.errors), (expected, feedback.errors)
        assert sum(e.count(expected) for e in feedback.errors) == 1, feedback.errors  # once
    assert not (tmp_path / "x.gpkg").exists()


def test_processing_reports_stages_as_progress_text(provider, red_square_tif, tmp_path) -> None:
    import processing
    from qgis.core import QgsProcessingFeedback

    class Capture(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.texts = []

        def setProgressText(self, text):
            self.texts.append(text)

    feedback = Capture()
    processing.run(
        "rs2sam:segmentbytext",
        {
            "INPUT": str(red_square_tif),
            "TEXT": "red",
            "MODEL_CONFIG": "standin:sleep:0.01:32",  # several tiles
            "OUTPUT": str(tmp_path / "o.gpkg"),
        },
        feedback=feedback,
    )
    texts = [t for t in feedback.texts if not t.startswith("Segmenting 'red'")]
    assert texts[0].startswith("Loading the model")
    assert "Reading the raster…" in texts
    tiles = [t for t in texts if t.startswith("Segmenting: tile")]
    assert len(tiles) == 1 and tiles[0].startswith("Segmenting: tile 1 of ")  # no flood
    assert texts[-2:] == ["Vectorising the polygons…", "Writing the result…"]


def test_algorithm_in_a_model(provider, red_square_tif, tmp_path) -> None:
    """The graphical modeler's API: a model with our algorithm as a child runs."""
    import processing
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )

    model = QgsProcessingModelAlgorithm("segment red", "tests")
    model.addModelParameter(
        QgsProcessingParameterRasterLayer("raster", "Raster"), QgsProcessingModelParameter("raster")
    )
    child = QgsProcessingModelChildAlgorithm("rs2sam:segmentbytext")
    child.setChildId("segment")
    child.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("raster")]
    )
    child.addParameterSources(
        "TEXT", [QgsProcessingModelChildParameterSource.fromStaticValue("the red square")]
    )
    child.addParameterSources(
        "MODEL_CONFIG", [QgsProcessingModelChildParameterSource.fromStaticValue("standin:red")]
    )
    output = QgsProcessingModelOutput("polygons")
    output.setChildOutputName("OUTPUT")
    child.setModelOutputs({"polygons": output})
    model.addChildAlgorithm(child)
    ok, errors = model.validate()
    assert ok, errors
    out = tmp_path / "model.gpkg"
    result = processing.run(model, {"raster": str(red_square_tif), "segment:polygons": str(out)})
    assert _read(Path(result["segment:polygons"])).featureCount() == 1


def test_qgis_process_bin_runs_the_installed_plugin(
    installed_profile, sandbox_env, red_square_tif, tmp_path
) -> None:
    """Debian's qgis_process wrapper is broken; qgis_process.bin with the zip-installed plugin."""
    plugins = installed_profile / "profiles" / "default" / "python" / "plugins"
    env = {**sandbox_env, "QGIS_PLUGINPATH": str(plugins)}
    enable = subprocess.run(
        [QGIS_PROCESS, "plugins", "enable", "rs2sam_qgis"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert enable.returncode == 0, enable.stdout + enable.stderr
    out = tmp_path / "qp.gpkg"
    run = subprocess.run(
        [
            QGIS_PROCESS,
            "--json",
            "run",
            "rs2sam:segmentbytext",
            "--",
            f"INPUT={red_square_tif}",
            "TEXT=the red square",
            "MODEL_CONFIG=standin:red",
            "DEVICE=cpu",
            "THRESHOLD=0.5",
            f"OUTPUT={out}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    payload = json.loads(run.stdout[run.stdout.index("{") :])
    assert payload["results"]["POLYGONS"] == 1
    layer = _read(out)
    assert layer.featureCount() == 1 and layer.crs().authid() == "EPSG:32633"
    # the vendored backend was used (the run's log names it)
    assert "standin" in next(layer.getFeatures())["model"]

    # errors are printed once, in words (not "Incorrect parameter value"), nothing is written
    for params, expected in (
        (["TEXT="], "TEXT is empty: describe what to segment"),
        (["TEXT=red", "EXTENT=0,10,0,10 [EPSG:32633]"], "EXTENT does not overlap"),
    ):
        bad = tmp_path / "bad.gpkg"
        failed = subprocess.run(
            [
                QGIS_PROCESS,
                "run",
                "rs2sam:segmentbytext",
                "--",
                f"INPUT={red_square_tif}",
                "MODEL_CONFIG=standin:red",
                *params,
                f"OUTPUT={bad}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            cwd=tmp_path,
        )
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0 and output.count(expected) == 1, output[-3000:]
        assert "Incorrect parameter value" not in output and not bad.exists()

def test_processing_runs_an_lgce_checkpoint(provider, red_square_tif, tmp_path) -> None:
    """A checkpoint of the second architecture (LGCE) runs end to end through Processing: the
    header's architecture builds the model, the features name its config and weights."""
    import processing

    from backend.model.checkpoint import save_checkpoint
    from backend.model.lgce.model import build_lgce

    ckpt = tmp_path / "lgce_tiny.safetensors"
    sha = save_checkpoint(build_lgce("lgce-tiny"), ckpt)
    out = tmp_path / "lgce.gpkg"
    result = processing.run(
        "rs2sam:segmentbytext",
        {
            "INPUT": str(red_square_tif),
            "TEXT": "the red square",
            "CHECKPOINT": str(ckpt),
            "THRESHOLD": 0.01,  # random weights: any polygon will do, this checks wiring
            "DEVICE": "cpu",
            "OUTPUT": str(out),
        },
    )
    assert Path(result["OUTPUT"]) == out and result["POLYGONS"] >= 1
    layer = _read(out)
    assert layer.crs().authid() == "EPSG:32633"
    features = list(layer.getFeatures())
    assert len(features) == result["POLYGONS"]
    assert {f["model"] for f in features} == {"lgce-tiny"}
    assert {f["checkpoint_sha256"] for f in features} == {sha}
