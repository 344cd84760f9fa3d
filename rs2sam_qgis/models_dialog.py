"""The "Models" dialog: what can run, get the published model, import a folder, use, remove.

Everything slow (listing the files on the hub, downloading, verifying, importing) runs in a
:class:`~.model_task.ModelJobTask`; the dialog only shows what the backend's model manager
(``backend.model_store``) reports. Before a download it shows the size, the free disk space and
the model page's licence text (accepted once); during it, bytes, rate and time left; Cancel
stops at the next chunk and nothing is imported (the downloaded part is kept for a resume). A
finished get becomes the dock's choice through the stored preferences (``rs2sam/checkpoint``)
and :attr:`ModelsDialog.model_chosen`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ._backend import backend_module
from .i18n import tr
from .log import log_error, log_info
from .model_task import ModelJobTask

COLUMNS = ("Model", "State", "Size", "Licence", "Where")
_STAGES = {"download": "Downloading", "verify": "Verifying", "import": "Importing"}


class LicenceDialog(QDialog):
    """Shows a model's licence text; Accept or Decline."""

    def __init__(self, label: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Rs2SamLicenceDialog")
        self.setWindowTitle(tr("Licence of {label}").format(label=label))
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(tr("Read the licence; the download starts once you accept it.")))
        view = QPlainTextEdit(self)
        view.setReadOnly(True)
        view.setPlainText(text)
        layout.addWidget(view)
        buttons = QDialogButtonBox(self)
        buttons.addButton(tr("Accept"), QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(tr("Decline"), QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(620, 420)


class ModelsDialog(QDialog):
    """The model manager.

    Args:
        parent: Parent window.
        models_dir: The models folder (default: the backend's, ``RS2SAM_MODELS_DIR``).
        message_bar: Where failures are also pushed (``iface.messageBar()``), or None.

    Signals:
        model_chosen(str): a checkpoint became the dock's choice (after a get or "Use").

    Attributes:
        ask_licence: ``(label, text) -> bool``; shows :class:`LicenceDialog` by default.
        confirm: ``(question) -> bool``; a Yes/No box by default.
        task: The running task, or None.
    """

    model_chosen = pyqtSignal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        models_dir: str | None = None,
        message_bar: Any = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("Rs2SamModelsDialog")
        self.setWindowTitle(tr("Segment by text: models"))
        self.store = backend_module("model_store.manager").ModelStore(models_dir)
        self.message_bar = message_bar
        self.ask_licence: Callable[[str, str], bool] = self._ask_licence
        self.confirm: Callable[[str], bool] = self._confirm
        self.task: ModelJobTask | None = None
        self.rows: list[Any] = []

        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels([tr(c) for c in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.fp16_check = QCheckBox(tr("Store float16 (half the size on disk)"), self)
        self.keep_check = QCheckBox(tr("Keep the raw download after the import"), self)
        self.get_button = QPushButton(tr("Get"), self)
        self.import_button = QPushButton(tr("Import folder…"), self)
        self.use_button = QPushButton(tr("Use in the dock"), self)
        self.remove_button = QPushButton(tr("Remove"), self)
        self.cancel_button = QPushButton(tr("Cancel"), self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.get_button.clicked.connect(self.get_selected)
        self.import_button.clicked.connect(lambda: self.import_folder())
        self.use_button.clicked.connect(self.use_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.cancel_button.clicked.connect(self.cancel)

        buttons = QHBoxLayout()
        for button in (self.get_button, self.import_button, self.use_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        running = QHBoxLayout()
        running.addWidget(self.progress, 1)
        running.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(tr("Models folder: {path}").format(path=self.store.root)))
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.fp16_check)
        layout.addWidget(self.keep_check)
        layout.addLayout(running)
        layout.addWidget(self.status)
        layout.addWidget(close)
        self.resize(900, 460)
        self.refresh()
        self._set_running(False)

    # ------------------------------------------------------------------ table
    def refresh(self) -> None:
        """Re-read the models folder and fill the table."""
        fmt = backend_module("model_store.progress").format_bytes
        self.rows = self.store.rows()
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            state = tr("installed") if row.installed else tr("not installed")
            cells = (row.title, state, fmt(row.size_bytes) if row.size_bytes else "–",
                     row.licence, row.where)  # fmt: skip
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{row.title}\n{row.trained_on}\n{row.where}")
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self._update_buttons()

    def select(self, name: str) -> None:
        """Select the row of model ``name``."""
        for i, row in enumerate(self.rows):
            if row.name == name:
                self.table.selectRow(i)

    def selected(self) -> Any:
        """The selected row (``ModelRow``), or None."""
        index = self.table.currentRow()
        picked = self.table.selectionModel().selectedRows()
        if not picked or not 0 <= index < len(self.rows):
            return None
        return self.rows[picked[0].row()]

    def _update_buttons(self) -> None:
        row = self.selected()
        idle = self.task is None
        self.get_button.setEnabled(
            idle and row is not None and row.kind == "published" and not row.installed
        )
        self.use_button.setEnabled(idle and row is not None and row.installed)
        self.remove_button.setEnabled(idle and row is not None and row.kind != "bundled"
                                      and row.installed)  # fmt: skip
        self.import_button.setEnabled(idle)

    def _set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self._update_buttons()

    # ------------------------------------------------------------------ actions
    def get_selected(self) -> None:
        """Plan the selected published model (file list, size, licence) in the background."""
        row = self.selected()
        if row is None:
            return
        fp16 = self.fp16_check.isChecked()
        self._start(
            tr("Listing {name}").format(name=row.name),
            lambda _p, _c: self.store.prepare_get(row.name, fp16=fp16),
            self._planned,
        )

    def import_folder(self, folder: str | None = None) -> None:
        """Plan importing a release folder the user has (asks for it when not given)."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(
                self, tr("Choose the release folder (with config.json and the weights)")
            )
            if not folder:
                return
        fp16 = self.fp16_check.isChecked()
        self._start(
            tr("Checking {folder}").format(folder=folder),
            lambda _p, _c: self.store.prepare_import(folder, fp16=fp16),
            self._planned,
        )

    def _planned(self, job: Any) -> None:
        self.status.setText(job.describe())
        if job.problem is not None:
            self._failed(job.problem, "")
            return
        if not self.store.licence_accepted(job):
            shown = f"{job.describe()}\n\n{job.licence_text}"  # sizes and free space first
            if not self.ask_licence(job.plan.label, shown):
                self._failed(
                    tr("The licence of {label} was not accepted; nothing was downloaded.").format(
                        label=job.plan.label
                    ),
                    "",
                )
                return
            self.store.accept_licence(job)
        from .runner import call_with_torch

        keep = self.keep_check.isChecked()
        self._start(
            tr("Getting {name}").format(name=job.name),
            lambda on_progress, is_cancelled: self.store.run(
                job,
                keep_download=keep,
                on_progress=on_progress,
                is_cancelled=is_cancelled,
                run_import=call_with_torch,
            ),
            self._installed,
        )

    def _installed(self, installed: Any) -> None:
        self.refresh()
        self.select(installed.name)
        self.progress.setValue(100)
        text = tr("Installed {name}: {path}. The dock now uses it.").format(
            name=installed.name, path=installed.checkpoint
        )
        self.status.setText(text)
        log_info(f"{text} {installed.summary}")
        self.choose(str(installed.checkpoint))

    def use_selected(self) -> None:
        """Make the selected installed model the dock's choice."""
        row = self.selected()
        if row is not None and row.installed:
            self.choose("" if row.kind == "bundled" else str(row.path))
            self.status.setText(tr("The dock now uses {title}.").format(title=row.title))

    def choose(self, checkpoint: str) -> None:
        """Store ``checkpoint`` as the dock's model ("" = bundled) and announce it."""
        from .settings import load_settings, save_settings

        values = load_settings()
        values.checkpoint = checkpoint
        save_settings(values)
        self.model_chosen.emit(checkpoint)

    def remove_selected(self) -> None:
        """Delete the selected installed model (after a confirmation)."""
        row = self.selected()
        if row is None or not self.confirm(
            tr("Delete {title} ({where})?").format(title=row.title, where=row.where)
        ):
            return
        try:
            freed = self.store.remove(row.name)
        except backend_module("errors").Rs2SamError as exc:
            self._failed(str(exc), "")
            return
        fmt = backend_module("model_store.progress").format_bytes
        self.status.setText(tr("Removed {name} ({size} freed).").format(
            name=row.name, size=fmt(freed)))  # fmt: skip
        self.refresh()

    def cancel(self) -> None:
        """Cancel the running job (the download stops at its next chunk)."""
        if self.task is not None:
            self.task.cancel()

    # ------------------------------------------------------------------ task plumbing
    def _start(self, description: str, job: Any, on_success: Callable[[Any], None]) -> None:
        task = ModelJobTask(description, job)
        task.progress_state.connect(self._on_progress)
        task.succeeded.connect(lambda value: (self._done(), on_success(value)))
        task.failed.connect(lambda message, details: (self._done(), self._failed(message, details)))
        task.cancelled.connect(lambda: (self._done(), self._cancelled()))
        self.task = task
        self.status.setText(description + "…")
        self.progress.setValue(0)
        self._set_running(True)
        QgsApplication.taskManager().addTask(task)

    def _done(self) -> None:
        self.task = None
        self._set_running(False)

    def _on_progress(self, state: Any) -> None:
        self.progress.setValue(int(state.percent))
        self.status.setText(state.describe().replace(state.stage, tr(_STAGES.get(state.stage,
                            state.stage)), 1))  # fmt: skip

    def _cancelled(self) -> None:
        self.status.setText(tr(
            "Cancelled; nothing was imported. What was downloaded is kept and the next Get "
            "resumes it."))  # fmt: skip
        self.refresh()

    def _failed(self, message: str, details: str) -> None:
        log_error(message + ("\n" + details if details else ""))
        self.status.setText(tr("Failed: {message}").format(message=message))
        if self.message_bar is not None:
            self.message_bar.pushMessage(
                tr("Models"), message, level=Qgis.MessageLevel.Critical, duration=0
            )
        self.refresh()

    def _ask_licence(self, label: str, text: str) -> bool:
        return LicenceDialog(label, text, self).exec() == QDialog.DialogCode.Accepted

    def _confirm(self, question: str) -> bool:
        answer = QMessageBox.question(self, tr("Models"), question)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: Any) -> None:
        """Closing while a job runs cancels it (nothing is imported)."""
        self.cancel()
        super().closeEvent(event)
