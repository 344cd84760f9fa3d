"""The "Segment by text" dock: gathers inputs into a request and shows progress (a view only).

The dock never starts work itself: Run emits ``segment_requested(SegmentRequest)`` or, when an
input is missing, ``invalid_input(message)``; the controller does the rest (C8).

The dock only assembles its parts (:mod:`rs2sam_qgis.dock_parts`, one module each: missing
dependencies, query, inputs, options, model, output, run/status, request builder), lays them out
and forwards their signals; the widgets stay reachable under their old names
(``dock.query_combo``, ``dock.run_button``, ...).
"""

from __future__ import annotations

from qgis.core import QgsProject, QgsRasterLayer
from qgis.gui import QgsDockWidget, QgsMapCanvas
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QFrame, QScrollArea, QVBoxLayout, QWidget

from ._backend import bundled_checkpoint
from .dock_parts.deps_part import DepsPart
from .dock_parts.inputs_part import InputsPart
from .dock_parts.layer_follow import LayerFollower
from .dock_parts.model_part import DEV_MODEL_CHOICES, DEVICES, ModelPart
from .dock_parts.options_part import OptionsPart
from .dock_parts.output_part import OutputPart
from .dock_parts.quality_part import QualityPart
from .dock_parts.query_part import QueryPart
from .dock_parts.refine_part import RefinePart
from .dock_parts.request_builder import build_segment_request
from .dock_parts.run_part import RunPart
from .dock_parts.teach_part import TeachPart
from .i18n import tr
from .layer_input import InputProblem
from .preload import ModelPreloader
from .remedies import RemedyContext
from .request import SegmentRequest
from .settings import PluginSettings, remember_query

__all__ = ["DEVICES", "DEV_MODEL_CHOICES", "SegmentDock", "project_has_layer"]


class SegmentDock(QgsDockWidget):
    """View: text box, raster picker, extent, model, output, Run/Cancel, progress, status.

    Signals:
        segment_requested(SegmentRequest): Run was clicked and the inputs are complete.
        invalid_input(str): Run was clicked but an input is missing or wrong.
        cancel_requested(): Cancel was clicked.
        install_requested(): "Install dependencies…" was clicked.
        models_requested(): "Models…" was clicked.
    """

    segment_requested = pyqtSignal(object)
    invalid_input = pyqtSignal(str)
    cancel_requested = pyqtSignal()
    install_requested = pyqtSignal()
    models_requested = pyqtSignal()

    def __init__(
        self, canvas: QgsMapCanvas, settings: PluginSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(tr("Segment by text"), parent)
        self.setObjectName("Rs2SamSegmentDock")
        self.canvas = canvas
        self.settings = settings
        self.temp_output_warning = ""
        self.scroll = QScrollArea(self)
        self.scroll.setObjectName("Rs2SamSegmentDockScroll")
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        # labels wrap instead
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.body = QWidget(self.scroll)
        self.body.setObjectName("Rs2SamSegmentDockBody")
        self._build_parts(settings)
        self._expose_widgets()
        self._lay_out()
        self._connect()
        self.apply_settings(settings)
        self.inputs_part.connect_canvas()
        self.layer_follower = LayerFollower(self.layer_combo)
        self.teach_part = TeachPart(self)  # "Teach from these features" beside Run/Cancel
        self.refine_part = RefinePart(self)  # Refine / Undo click / Clear clicks below them
        self.preloader = ModelPreloader(self)  # the model loads when the dock opens

    def _build_parts(self, settings: PluginSettings) -> None:
        body = self.body
        self.deps_part = DepsPart(body)
        self.query_part = QueryPart(body, settings.recent_queries)
        self.inputs_part = InputsPart(body, self.canvas)
        self.options_part = OptionsPart(body)
        self.model_part = ModelPart(body)
        self.output_part = OutputPart(body)
        self.run_part = RunPart(body)
        self.quality_part = QualityPart(body)

    def _expose_widgets(self) -> None:
        """The parts' widgets under the dock's historical attribute names."""
        self.deps_box = self.deps_part.box
        self.deps_label = self.deps_part.label
        self.install_button = self.deps_part.install_button
        self.query_combo = self.query_part.combo
        self.layer_combo = self.inputs_part.layer_combo
        self.extent_combo = self.inputs_part.extent_combo
        self.aoi_label = self.inputs_part.aoi_label
        self.aoi_layer_combo = self.inputs_part.aoi_layer_combo
        self.extent_info = self.inputs_part.extent_info
        self.threshold_spin = self.options_part.threshold_spin
        self.min_area_spin = self.options_part.min_area_spin
        self.gsd_spin = self.options_part.gsd_spin
        self.checkpoint_widget = self.model_part.checkpoint_widget
        self.model_info = self.model_part.model_info
        self.dev_model_combo = self.model_part.dev_model_combo
        self.dev_model_label = self.model_part.dev_model_label
        self.device_combo = self.model_part.device_combo
        self.threads_spin = self.model_part.threads_spin
        self.output_dir_widget = self.output_part.output_dir_widget
        self.memory_checkbox = self.output_part.memory_checkbox
        self.run_button = self.run_part.run_button
        self.cancel_button = self.run_part.cancel_button
        self.progress_bar = self.run_part.progress_bar
        self.status_label = self.run_part.status_label

    def _lay_out(self) -> None:
        main_form = QFormLayout()
        for part in (self.query_part, self.inputs_part, self.options_part):
            part.add_rows(main_form)
        layout = QVBoxLayout(self.body)
        layout.addWidget(self.deps_part.box)
        layout.addLayout(main_form)
        layout.addWidget(self.model_part.box)
        layout.addWidget(self.output_part.box)
        self.run_part.add_to(layout)
        layout.addWidget(self.quality_part.box)
        layout.addStretch(1)
        self.scroll.setWidget(self.body)
        self.setWidget(self.scroll)
        for combo in (self.query_combo, self.layer_combo, self.extent_combo, self.aoi_layer_combo,
                      self.dev_model_combo, self.device_combo):
            # long layer names or queries must not widen the dock beyond the screen
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self._fit_width()

    def _connect(self) -> None:
        self.deps_part.install_button.clicked.connect(self.install_requested)
        self.model_part.models_button.clicked.connect(self.models_requested)
        self.query_part.combo.lineEdit().returnPressed.connect(self._on_run_clicked)
        self.model_part.checkpoint_widget.fileChanged.connect(self._update_model_info)
        self.model_part.dev_model_combo.currentIndexChanged.connect(self._update_model_info)
        self.run_part.run_button.clicked.connect(self._on_run_clicked)
        self.run_part.cancel_button.clicked.connect(self.cancel_requested)

    # ------------------------------------------------------------------ settings
    def apply_settings(self, settings: PluginSettings) -> None:
        """Show stored preferences in the widgets."""
        self.options_part.apply(settings)
        self.model_part.apply(settings)
        self.output_part.apply(settings)
        self.inputs_part.set_extent_mode(settings.extent_mode)
        self._update_model_info()

    def current_settings(self) -> PluginSettings:
        """The widgets' values as preferences (recent queries included)."""
        return PluginSettings(
            recent_queries=list(self.settings.recent_queries),
            **self.options_part.values(),
            **self.model_part.values(),
            **self.output_part.values(),
            extent_mode=self.inputs_part.extent_mode(),
            dev_models=self.settings.dev_models,
        )

    def remember_query(self, text: str) -> None:
        """Put ``text`` first in the recent-query list (widget and settings)."""
        self.settings.recent_queries = remember_query(self.settings.recent_queries, text)
        self.query_part.show_recent(self.settings.recent_queries, text)

    def select_active_layer(self, layer: object) -> None:
        """Default the raster picker to ``layer`` when it is a raster layer."""
        if isinstance(layer, QgsRasterLayer):
            self.layer_combo.setLayer(layer)

    # ------------------------------------------------------------------ state
    @property
    def stage_key(self) -> str:
        """The current run stage (``load``, ``read``, ``tiles``, ...; "" when idle)."""
        return self.run_part.stage_key

    def set_running(self, running: bool) -> None:
        """Switch between idle (Run enabled) and running (Cancel enabled)."""
        self.run_part.set_running(running)

    def set_progress(self, percent: float) -> None:
        """Progress bar value in percent."""
        self.run_part.set_progress(percent)

    def set_stage(self, key: str, text: str) -> None:
        """What the run does now, in the status line; the model load shows a busy bar.

        Args:
            key: ``load``, ``read``, ``tiles``, ``vectorize`` or ``write``.
            text: The status text.
        """
        self.run_part.set_stage(key, text)

    def set_status(self, text: str) -> None:
        """The status line under the progress bar."""
        self.status_label.setText(text)

    def show_quality(self, context: RemedyContext | None, weak: bool) -> None:
        """After a run: the quality box with the remedies when ``weak``; hidden otherwise."""
        self.quality_part.show(context, weak)
        self._fit_width()

    def set_dependency_problem(self, text: str, installable: bool = True) -> None:
        """Show ``text`` and (if ``installable``) "Install dependencies…"; "" hides the box."""
        self.deps_part.show_problem(text, installable)
        self._fit_width()

    def _fit_width(self) -> None:
        """Keep the dock at least as wide as its content.

        Texts wrap or scroll vertically, but nothing is cut off at the right edge (the
        horizontal scroll bar is off).
        """
        self.body.adjustSize()
        scrollbar = self.scroll.verticalScrollBar().sizeHint().width()
        self.scroll.setMinimumWidth(self.body.minimumSizeHint().width() + scrollbar)

    def cleanup(self) -> None:
        """Disconnect from long-lived objects (canvas); called by the plugin's ``unload``."""
        self.inputs_part.disconnect_canvas()
        self.layer_follower.disconnect()
        self.quality_part.cleanup()
        self.refine_part.cleanup()

    # ------------------------------------------------------------------ slots
    def _update_model_info(self, *_args: object) -> None:
        self.model_part.show_info(self._dev_model(), bundled_checkpoint)

    def _dev_model(self) -> str:
        return self.model_part.dev_model(self.settings.dev_models)

    def _on_run_clicked(self) -> None:
        try:
            request = self.build_request()
        except InputProblem as exc:
            self.invalid_input.emit(str(exc))
            return
        self.segment_requested.emit(request)

    # ------------------------------------------------------------------ request
    def build_request(self) -> SegmentRequest:
        """Main thread: validate the inputs and copy them into a :class:`SegmentRequest`.

        Raises:
            InputProblem: Something the user has to fix first (the message says what).
        """
        values = self.current_settings()
        built = build_segment_request(
            self.query_part.text(),
            self.inputs_part.raster_layer(),
            values,
            self._dev_model(),
            self.inputs_part.aoi_layer(),
            self.canvas,
        )
        self.temp_output_warning = built.temp_output_warning
        self.settings = values
        return built.request


def project_has_layer(layer_id: str) -> bool:
    """True while ``layer_id`` is still in the current project."""
    return bool(layer_id) and QgsProject.instance().mapLayer(layer_id) is not None
