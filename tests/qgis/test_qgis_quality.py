"""Answers that say what they are worth: the bundled model's per-concept note in the dock's
status line and the result layer, and the remedies offered for a weak concept (real QGIS,
the bundled weights on the bundled SpaceNet tile)."""

from __future__ import annotations

import pytest
from qgis_helpers import DEMO_RASTER, wait_for

pytestmark = pytest.mark.qgis


def _run(plugin, text: str):
    dock = plugin.show_dock()
    dock.query_combo.setEditText(text)
    dock.dev_model_combo.setEditText("")  # the bundled weights
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("layer"))
    dock.memory_checkbox.setChecked(True)
    dock.run_button.click()
    task = plugin.controller.task
    assert task is not None, dock.status_label.text()
    assert wait_for(lambda: plugin.controller.task is None, 300), "the run did not finish"
    return task.outcome


def test_strong_and_weak_concepts_with_the_bundled_model(plugin, qgis_iface) -> None:
    from qgis.core import QgsProject, QgsRasterLayer

    from rs2sam_qgis import remedies
    from rs2sam_qgis.quality_note import QUALITY_PROPERTY

    raster = QgsRasterLayer(str(DEMO_RASTER), "spacenet")
    assert raster.isValid()
    QgsProject.instance().addMapLayer(raster)
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(raster)
    # the plugin connects the project's two remedies; the test replaces them with probes
    assert [r.key for r in remedies.registered()] == [remedies.PUBLISHED_MODEL, remedies.TEACH]
    remedies.unregister_remedy(remedies.PUBLISHED_MODEL)
    offered: list[remedies.RemedyContext] = []
    remedies.unregister_remedy(remedies.PUBLISHED_MODEL)  # the model manager's; re-added below
    remedies.register_remedy(remedies.TEACH, "Teach from polygons…", offered.append)
    try:
        # strong: 'bare land' has mIoU 74.0 on the Dubai val split -> a note, no remedies box
        strong = _run(plugin, "the bare land")
        assert strong is not None and not strong.quality_weak
        status = dock.status_label.text()
        expected = "The bundled model on 'bare land': mIoU 74.0 measured on the dubai val split"
        assert expected in status
        assert "(n=259 expressions naming it)" in status
        assert dock.quality_part.box.isHidden()
        if strong.polygons:
            layer = QgsProject.instance().mapLayer(plugin.controller.last_layer_id)
            assert "mIoU 74.0" in layer.customProperty(QUALITY_PROPERTY)
            assert "mIoU 74.0" in layer.metadata().abstract()
        # weak: 'the river' is water, a known failure case of these weights
        weak = _run(plugin, "the river")
        assert weak is not None and weak.quality_weak and weak.concepts == ("water",)
        status = dock.status_label.text()
        assert "The bundled model on 'water': mIoU 70.8" in status
        assert "known failure: dark or green water" in status
        assert not dock.quality_part.box.isHidden()
        assert "What helps" in dock.quality_part.label.text()
        (button,) = dock.quality_part.buttons
        assert button.text() == "Teach from polygons…"
        button.click()
        (context,) = offered
        assert context.prompt == "the river" and context.concepts == ("water",)
        assert context.raster_layer_id == raster.id() and "known failure" in context.note
        # the published-model remedy joins when its feature registers; unregistering removes it
        remedies.register_remedy(remedies.PUBLISHED_MODEL, "Get the published model…", print)
        assert [b.text() for b in dock.quality_part.buttons] == [
            "Get the published model…", "Teach from polygons…"]
        remedies.unregister_remedy(remedies.PUBLISHED_MODEL)
        remedies.unregister_remedy(remedies.TEACH)
        assert dock.quality_part.buttons == []
        assert "the published RS2-SAM 2 model" in dock.quality_part.label.text()
        # the minimum area was Auto and is said: 25 px at the working resolution
        assert "Auto: 25 px at" in dock.status_label.text()
    finally:
        remedies.unregister_remedy(remedies.TEACH)
        remedies.unregister_remedy(remedies.PUBLISHED_MODEL)


def test_a_checkpoint_the_table_does_not_know_gets_no_note(plugin, qgis_iface, red_square_tif):
    from qgis.core import QgsProject, QgsRasterLayer

    raster = QgsRasterLayer(str(red_square_tif), "red")
    QgsProject.instance().addMapLayer(raster)
    dock = plugin.show_dock()
    dock.layer_combo.setLayer(raster)
    dock.query_combo.setEditText("the water")
    dock.dev_model_combo.setEditText("standin:red")
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("layer"))
    dock.memory_checkbox.setChecked(True)
    dock.run_button.click()
    assert wait_for(lambda: plugin.controller.task is None, 60)
    assert "mIoU" not in dock.status_label.text()
    assert dock.quality_part.box.isHidden()


def test_the_plugin_connects_both_remedies(plugin, qgis_iface) -> None:
    from rs2sam_qgis import remedies

    dock = plugin.show_dock()
    by_key = {r.key: r for r in remedies.registered()}
    context = remedies.RemedyContext(prompt="the river", concepts=("water",), note="weak")
    by_key[remedies.PUBLISHED_MODEL].callback(context)  # the model manager opens
    assert plugin.models_dialog is not None and plugin.models_dialog.isVisible()
    plugin.models_dialog.close()
    by_key[remedies.TEACH].callback(context)
    assert dock.query_combo.currentText() == "the river"
    assert "Teach from these features" in dock.status_label.text()


def test_unload_disconnects_the_remedies(qgis_iface, clean_project) -> None:
    import rs2sam_qgis
    from rs2sam_qgis import remedies

    instance = rs2sam_qgis.classFactory(qgis_iface)
    instance.initGui()
    instance.show_dock()
    assert len(remedies.registered()) == 2
    instance.unload()
    assert remedies.registered() == []


def test_processing_reports_the_note(qgis_processing, tmp_path) -> None:
    import processing
    from qgis.core import QgsProcessingFeedback

    import rs2sam_qgis

    class Feedback(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.warnings: list[str] = []

        def pushWarning(self, text: str) -> None:
            self.warnings.append(text)
            super().pushWarning(text)

    instance = rs2sam_qgis.classFactory(None)
    instance.initProcessing()
    try:
        feedback = Feedback()
        processing.run(
            "rs2sam:segmentbytext",
            {"INPUT": str(DEMO_RASTER), "TEXT": "the river", "DEVICE": "cpu",
             "OUTPUT": str(tmp_path / "river.gpkg")},
            feedback=feedback,
        )
        assert any("The bundled model on 'water'" in w and "known failure" in w
                   for w in feedback.warnings), feedback.warnings
    finally:
        instance.unload()
