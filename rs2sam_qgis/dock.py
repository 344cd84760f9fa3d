"""The "Segment by text" dock: gathers inputs into a request and shows progress (a view only).

The dock never starts work itself: Run emits ``segment_requested(SegmentRequest)`` or, when an
input is missing, ``invalid_input(message)``; the controller does the rest (C8).
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import (
    QgsCollapsibleGroupBox,
    QgsDockWidget,
    QgsDoubleSpinBox,
    QgsFileWidget,
    QgsMapCanvas,
    QgsMapLayerComboBox,
)
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._backend import bundled_checkpoint
from .i18n import tr
from .layer_input import (
    InputProblem,
    default_output_dir,
    file_source,
    memory_output_path,
    output_path,
    provider_source,
    resolve_area,
)
from .models import choice_problem, parse_model_choice
from .request import SegmentRequest
from .settings import PluginSettings, remember_query

DEVICES = ("auto", "cpu", "cuda", "mps")
DEV_MODEL_CHOICES = ("", "test-tiny", "standin:red", "standin:sleep:0.5:64")


class SegmentDock(QgsDockWidget):
    """View: text box, raster picker, extent, model, output, Run/Cancel, progress, status.

    Signals:
        segment_requested(SegmentRequest): Run was clicked and the inputs are complete.
        invalid_input(str): Run was clicked but an input is missing or wrong.
        cancel_requested(): Cancel was clicked.
        install_requested(): "Install dependencies…" was clicked.
    """

    segment_requested = pyqtSignal(object)
    invalid_input = pyqtSignal(str)
    cancel_requested = pyqtSignal()
    install_requested = pyqtSignal()

    def __init__(
        self, canvas: QgsMapCanvas, settings: PluginSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(tr("Segment by text"), parent)
        self.setObjectName("Rs2SamSegmentDock")
        self.canvas = canvas
        self.settings = settings
        self.temp_output_warning = ""
        self.stage_key = ""
        scroll = QScrollArea(self)
        scroll.setObjectName("Rs2SamSegmentDockScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # labels wrap instead
        body = QWidget(scroll)
        body.setObjectName("Rs2SamSegmentDockBody")

        # --- missing dependencies (hidden while everything is installed)
        self.deps_box = QFrame(body)
        self.deps_box.setObjectName("Rs2SamDepsBox")
        self.deps_box.setFrameShape(QFrame.StyledPanel)
        self.deps_label = QLabel(self.deps_box)
        self.deps_label.setObjectName("Rs2SamDepsLabel")
        self.deps_label.setWordWrap(True)
        self.deps_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.install_button = QPushButton(tr("Install dependencies…"), self.deps_box)
        self.install_button.setObjectName("Rs2SamInstallButton")
        self.install_button.clicked.connect(self.install_requested)
        deps_layout = QVBoxLayout(self.deps_box)
        deps_layout.addWidget(self.deps_label)
        deps_layout.addWidget(self.install_button)
        self.deps_box.setVisible(False)

        # --- what and where
        self.query_combo = QComboBox(body)
        self.query_combo.setEditable(True)
        self.query_combo.setInsertPolicy(QComboBox.NoInsert)
        self.query_combo.addItems(settings.recent_queries)
        self.query_combo.setCurrentIndex(-1)
        self.query_combo.lineEdit().setPlaceholderText(
            tr("e.g. the storage tanks next to the harbor")
        )
        self.query_combo.lineEdit().setClearButtonEnabled(True)
        self.query_combo.lineEdit().returnPressed.connect(self._on_run_clicked)
        self.query_combo.setToolTip(tr("What to segment, in words; recent queries in the list."))

        self.layer_combo = QgsMapLayerComboBox(body)
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer_combo.setAllowEmptyLayer(True)
        self.layer_combo.setToolTip(tr("The raster to segment (defaults to the active layer)."))

        self.extent_combo = QComboBox(body)
        self.extent_combo.addItem(tr("Visible map extent"), "canvas")
        self.extent_combo.addItem(tr("Full layer"), "layer")
        self.extent_combo.addItem(tr("Selected polygon(s) of a layer"), "selection")
        self.aoi_layer_combo = QgsMapLayerComboBox(body)
        self.aoi_layer_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.aoi_layer_combo.setToolTip(tr("Polygon layer whose selected features set the area."))
        self.extent_combo.currentIndexChanged.connect(self._update_extent_widgets)
        self.extent_info = QLabel(body)
        self.extent_info.setWordWrap(True)
        self.extent_info.setObjectName("Rs2SamExtentInfo")

        self.threshold_spin = QgsDoubleSpinBox(body)
        self.threshold_spin.setRange(0.01, 1.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setDecimals(2)
        self.threshold_spin.setClearValue(0.5)
        self.threshold_spin.setToolTip(tr("Pixels with a probability above this are kept."))
        self.min_area_spin = QgsDoubleSpinBox(body)
        self.min_area_spin.setRange(0.0, 1e9)
        self.min_area_spin.setDecimals(1)
        self.min_area_spin.setSuffix(" m²")
        self.min_area_spin.setClearValue(0.0)
        self.min_area_spin.setToolTip(tr("Polygons with a smaller ground area are dropped."))
        self.gsd_spin = QgsDoubleSpinBox(body)
        self.gsd_spin.setObjectName("Rs2SamGsdSpin")
        self.gsd_spin.setRange(0.0, 1000.0)
        self.gsd_spin.setDecimals(2)
        self.gsd_spin.setSingleStep(0.05)
        self.gsd_spin.setSuffix(" m/px")
        self.gsd_spin.setSpecialValueText(tr("Model's own"))
        self.gsd_spin.setClearValue(0.0)
        self.gsd_spin.setToolTip(
            tr(
                "Ground resolution the image is resampled to before the model sees it, so the "
                "result does not depend on the zoom. 'Model's own' = what the weights were "
                "trained at, per concept of the text when they store it (bundled weights: "
                "vehicles 0.25 m/px, most others 1 m/px)."
            )
        )

        main_form = QFormLayout()
        main_form.addRow(tr("Find"), self.query_combo)
        main_form.addRow(tr("Raster layer"), self.layer_combo)
        main_form.addRow(tr("Extent"), self.extent_combo)
        self.aoi_label = QLabel(tr("Polygon layer"), body)
        main_form.addRow(self.aoi_label, self.aoi_layer_combo)
        main_form.addRow("", self.extent_info)
        main_form.addRow(tr("Threshold"), self.threshold_spin)
        main_form.addRow(tr("Minimum area"), self.min_area_spin)
        main_form.addRow(tr("Working resolution"), self.gsd_spin)

        # --- model and device
        model_box = QgsCollapsibleGroupBox(tr("Model and device"), body)
        model_box.setObjectName("Rs2SamModelGroup")
        self.checkpoint_widget = QgsFileWidget(model_box)
        self.checkpoint_widget.setFilter(tr("Checkpoints (*.safetensors)"))
        self.checkpoint_widget.setDialogTitle(tr("Choose an RS2-SAM 2 checkpoint"))
        self.checkpoint_widget.lineEdit().setPlaceholderText(tr("Bundled default weights"))
        self.checkpoint_widget.fileChanged.connect(self._update_model_info)
        self.model_info = QLabel(model_box)
        self.model_info.setWordWrap(True)
        self.dev_model_combo = QComboBox(model_box)
        self.dev_model_combo.setEditable(True)
        for choice in DEV_MODEL_CHOICES:
            self.dev_model_combo.addItem(choice or tr("(off: use the checkpoint)"), choice)
        self.dev_model_combo.setToolTip(
            tr("Developer only: random-init configs and stand-ins give meaningless results.")
        )
        self.dev_model_combo.currentIndexChanged.connect(self._update_model_info)
        self.dev_model_label = QLabel(tr("Developer model"), model_box)
        self.device_combo = QComboBox(model_box)
        self.device_combo.setEditable(True)  # cuda:1 etc.
        self.device_combo.addItems(DEVICES)
        self.threads_spin = QSpinBox(model_box)
        self.threads_spin.setRange(1, 256)
        self.threads_spin.setToolTip(tr("CPU threads for the model (the GUI keeps one core)."))
        model_form = QFormLayout(model_box)
        model_form.addRow(tr("Checkpoint"), self.checkpoint_widget)
        model_form.addRow("", self.model_info)
        model_form.addRow(self.dev_model_label, self.dev_model_combo)
        model_form.addRow(tr("Device"), self.device_combo)
        model_form.addRow(tr("Threads"), self.threads_spin)

        # --- output
        output_box = QgsCollapsibleGroupBox(tr("Output"), body)
        output_box.setObjectName("Rs2SamOutputGroup")
        self.output_dir_widget = QgsFileWidget(output_box)
        self.output_dir_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.output_dir_widget.lineEdit().setPlaceholderText(
            tr("Next to the project file (unsaved project: temporary layer)")
        )
        self.memory_checkbox = QCheckBox(tr("Temporary memory layer (not saved)"), output_box)
        self.memory_checkbox.toggled.connect(self.output_dir_widget.setDisabled)
        output_form = QFormLayout(output_box)
        output_form.addRow(tr("Folder"), self.output_dir_widget)
        output_form.addRow("", self.memory_checkbox)

        # --- run
        self.run_button = QPushButton(tr("Run"), body)
        self.run_button.setObjectName("Rs2SamRunButton")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self._on_run_clicked)
        self.cancel_button = QPushButton(tr("Cancel"), body)
        self.cancel_button.setObjectName("Rs2SamCancelButton")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.progress_bar = QProgressBar(body)
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.status_label = QLabel(tr("Ready."), body)
        self.status_label.setObjectName("Rs2SamStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.status_label.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)

        layout = QVBoxLayout(body)
        layout.addWidget(self.deps_box)
        layout.addLayout(main_form)
        layout.addWidget(model_box)
        layout.addWidget(output_box)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addStretch(1)
        scroll.setWidget(body)
        self.body = body
        self.scroll = scroll
        self.setWidget(scroll)
        for combo in (self.query_combo, self.layer_combo, self.extent_combo, self.aoi_layer_combo,
                      self.dev_model_combo, self.device_combo):
            # long layer names or queries must not widen the dock beyond the screen
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self._fit_width()

        self.apply_settings(settings)
        self.canvas.extentsChanged.connect(self._update_extent_info)
        self.canvas.destinationCrsChanged.connect(self._update_extent_info)
        self.layer_combo.layerChanged.connect(self._update_extent_info)

    # ------------------------------------------------------------------ settings
    def apply_settings(self, settings: PluginSettings) -> None:
        """Show stored preferences in the widgets."""
        self.threshold_spin.setValue(settings.threshold)
        self.min_area_spin.setValue(settings.min_area_m2)
        self.gsd_spin.setValue(settings.gsd_m)
        self.checkpoint_widget.setFilePath(settings.checkpoint)
        index = self.device_combo.findText(settings.device)
        if index >= 0:
            self.device_combo.setCurrentIndex(index)
        else:
            self.device_combo.setEditText(settings.device)
        self.threads_spin.setValue(settings.threads)
        self.output_dir_widget.setFilePath(settings.output_dir)
        self.memory_checkbox.setChecked(settings.memory_layer)
        mode_index = self.extent_combo.findData(settings.extent_mode)
        self.extent_combo.setCurrentIndex(max(0, mode_index))
        self.dev_model_combo.setVisible(settings.dev_models)
        self.dev_model_label.setVisible(settings.dev_models)
        self._update_extent_widgets()
        self._update_model_info()

    def current_settings(self) -> PluginSettings:
        """The widgets' values as preferences (recent queries included)."""
        values = PluginSettings(
            recent_queries=list(self.settings.recent_queries),
            threshold=self.threshold_spin.value(),
            min_area_m2=self.min_area_spin.value(),
            gsd_m=self.gsd_spin.value(),
            checkpoint=self.checkpoint_widget.filePath().strip(),
            device=self.device_combo.currentText().strip() or "auto",
            threads=self.threads_spin.value(),
            output_dir=self.output_dir_widget.filePath().strip(),
            memory_layer=self.memory_checkbox.isChecked(),
            extent_mode=str(self.extent_combo.currentData()),
            dev_models=self.settings.dev_models,
        )
        return values

    def remember_query(self, text: str) -> None:
        """Put ``text`` first in the recent-query list (widget and settings)."""
        self.settings.recent_queries = remember_query(self.settings.recent_queries, text)
        self.query_combo.blockSignals(True)
        self.query_combo.clear()
        self.query_combo.addItems(self.settings.recent_queries)
        self.query_combo.setEditText(text)
        self.query_combo.blockSignals(False)

    def select_active_layer(self, layer: object) -> None:
        """Default the raster picker to ``layer`` when it is a raster layer."""
        if isinstance(layer, QgsRasterLayer):
            self.layer_combo.setLayer(layer)

    # ------------------------------------------------------------------ state
    def set_running(self, running: bool) -> None:
        """Switch between idle (Run enabled) and running (Cancel enabled)."""
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress_bar.setRange(0, 100)
        self.stage_key = ""
        if running:
            self.progress_bar.setValue(0)

    def set_progress(self, percent: float) -> None:
        """Progress bar value in percent."""
        self.progress_bar.setValue(round(percent))

    def set_stage(self, key: str, text: str) -> None:
        """What the run does now, in the status line; the model load shows a busy bar.

        Args:
            key: ``load``, ``read``, ``tiles``, ``vectorize`` or ``write``.
            text: The status text.
        """
        self.stage_key = key
        self.status_label.setText(text)
        if key == "load":
            self.progress_bar.setRange(0, 0)  # busy: a load has no percentage
        elif self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 100)

    def set_status(self, text: str) -> None:
        """The status line under the progress bar."""
        self.status_label.setText(text)

    def set_dependency_problem(self, text: str, installable: bool = True) -> None:
        """Show ``text`` and (if ``installable``) "Install dependencies…"; "" hides the box."""
        self.deps_label.setText(text)
        self.install_button.setVisible(installable)
        self.deps_box.setVisible(bool(text))
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
        for signal in (self.canvas.extentsChanged, self.canvas.destinationCrsChanged):
            try:
                signal.disconnect(self._update_extent_info)
            except TypeError:
                pass

    # ------------------------------------------------------------------ slots
    def _update_extent_widgets(self) -> None:
        is_selection = self.extent_combo.currentData() == "selection"
        self.aoi_layer_combo.setVisible(is_selection)
        self.aoi_label.setVisible(is_selection)
        self._update_extent_info()

    def _update_extent_info(self, *_args: object) -> None:
        layer = self.layer_combo.currentLayer()
        mode = self.extent_combo.currentData()
        if not isinstance(layer, QgsRasterLayer):
            self.extent_info.setText(tr("Add or choose a raster layer."))
            return
        kind = tr("file") if file_source(layer) is not None else tr("read at screen resolution")
        if mode == "canvas":
            size = self.canvas.size()
            self.extent_info.setText(
                tr("Visible extent ({w} × {h} screen px), CRS {crs}; layer: {kind}").format(
                    w=size.width(),
                    h=size.height(),
                    crs=self.canvas.mapSettings().destinationCrs().authid() or "?",
                    kind=kind,
                )
            )
        elif mode == "layer":
            self.extent_info.setText(
                tr("Whole layer, CRS {crs}; layer: {kind}").format(
                    crs=layer.crs().authid() or "?", kind=kind
                )
            )
        else:
            self.extent_info.setText(tr("Bounding box of the selected polygons, results clipped."))

    def _update_model_info(self, *_args: object) -> None:
        dev = self._dev_model()
        if dev:
            self.model_info.setText(
                tr("<b>Developer model {name}</b>: results are meaningless.").format(name=dev)
            )
            return
        path = self.checkpoint_widget.filePath().strip()
        if path:
            self.model_info.setText(
                tr("Checkpoint: {name}").format(name=Path(path).name)
                if Path(path).is_file()
                else tr("<b>File not found:</b> {path}").format(path=path)
            )
            return
        bundled = bundled_checkpoint()
        self.model_info.setText(
            tr("Bundled weights: {name}").format(name=bundled.name)
            if bundled is not None
            else tr("<b>No bundled weights in this build.</b> Choose a .safetensors checkpoint.")
        )

    def _dev_model(self) -> str:
        if not self.settings.dev_models:
            return ""
        data = self.dev_model_combo.currentData()
        text = self.dev_model_combo.currentText().strip()
        if (
            data is not None
            and self.dev_model_combo.itemText(self.dev_model_combo.currentIndex()) == text
        ):
            return str(data)
        return text

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
        text = " ".join(self.query_combo.currentText().split())
        if not text:
            raise InputProblem(
                tr("Type what to segment first, e.g. 'the buildings next to the river'.")
            )
        layer = self.layer_combo.currentLayer()
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            raise InputProblem(
                tr("Choose a raster layer to segment (add one to the project first).")
            )
        values = self.current_settings()
        choice = parse_model_choice(values.checkpoint, self._dev_model())
        problem = choice_problem(choice)
        if problem:
            raise InputProblem(problem)

        aoi_layer = self.aoi_layer_combo.currentLayer()
        area = resolve_area(
            values.extent_mode,
            layer,
            self.canvas.extent(),
            self.canvas.mapSettings().destinationCrs(),
            aoi_layer if isinstance(aoi_layer, QgsVectorLayer) else None,
        )
        source = file_source(layer) or provider_source(
            layer, area, self.canvas.mapUnitsPerPixel(), self.canvas.mapSettings().destinationCrs()
        )
        self.temp_output_warning = ""
        memory = values.memory_layer
        folder = Path(values.output_dir) if values.output_dir else None
        if not memory and folder is None:
            folder = default_output_dir()
            if folder is None:  # unsaved project, no folder chosen: a temporary layer
                memory = True
                self.temp_output_warning = tr(
                    "The project is not saved, so the result is a temporary layer: click its "
                    "icon in the Layers panel (Make Permanent) to save it, or choose an output "
                    "folder in the Output box."
                )
        if memory or folder is None:
            out = memory_output_path()
        else:
            try:
                out = output_path(folder, text)
            except OSError as exc:
                raise InputProblem(
                    tr("Cannot write to the output folder {folder}: {err}").format(
                        folder=folder, err=exc
                    )
                ) from exc
        name = text if len(text) <= 60 else text[:57] + "..."
        if choice.is_developer_choice:
            name = f"{name} [{choice.label}]"
        self.settings = values
        return SegmentRequest(
            text=text,
            source=source,
            bbox=area.bbox,
            bbox_crs=area.bbox_crs,
            threshold=values.threshold,
            min_area_m2=values.min_area_m2,
            model=choice,
            device=values.device,
            threads=values.threads,
            out_path=str(out),
            layer_name=name,
            raster_layer_id=layer.id(),
            aoi_wkt=area.aoi_wkt,
            memory_layer=memory,
            source_name=layer.name(),
            gsd_m=values.gsd_m or None,
        )


def project_has_layer(layer_id: str) -> bool:
    """True while ``layer_id`` is still in the current project."""
    return bool(layer_id) and QgsProject.instance().mapLayer(layer_id) is not None
