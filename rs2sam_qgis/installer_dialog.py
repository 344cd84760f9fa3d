"""The "Install dependencies" dialog: what is missing and why, what will be installed, a live log.

The dialog is a view over :class:`~.installer.PlanRunner`; what runs comes from a plan factory
(default: :func:`~.install_plan.backend_plan` for the chosen torch build), so tests can run a
small real package through exactly the same code.
"""

from __future__ import annotations

from collections.abc import Callable

from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QCloseEvent, QFontDatabase
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .deps import DependencyReport
from .i18n import tr
from .install_plan import (
    InstallPlan,
    backend_plan,
    cuda_available,
    default_torch_variant,
    torch_variants,
)
from .installer import CANCELLED, DONE, FAILED, INSTALLING, MISSING, PlanRunner
from .interpreter import PythonLocation, qgis_python

PlanFactory = Callable[[str], InstallPlan]
"""torch variant (``cpu``/``cuda``) -> the plan to run."""

VARIANT_LABELS = {
    "cpu": "CPU (works on every computer; about 1 GB)",
    "cuda": "NVIDIA GPU, CUDA (needs an NVIDIA driver; about 4 GB)",
}


class InstallerDialog(QDialog):
    """Shows the problems, the exact requirement set and the commands, then installs them.

    Args:
        report: The dependency check (what is missing and why).
        plan_factory: Builds the plan for a torch variant; default: the backend's pinned set.
        python: QGIS's interpreter; default :func:`.interpreter.qgis_python`.
        parent: Parent widget (the QGIS main window).

    Signals:
        state_changed(str): missing / installing / done / failed / cancelled.
    """

    state_changed = pyqtSignal(str)

    def __init__(
        self,
        report: DependencyReport,
        plan_factory: PlanFactory | None = None,
        python: PythonLocation | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("Rs2SamInstallerDialog")
        self.setWindowTitle(tr("Segment by text: install dependencies"))
        self.report = report
        self.python = python or qgis_python()
        self.plan_factory = plan_factory or (
            lambda variant: backend_plan(report, variant, python=self.python.path)
        )
        self.runner = PlanRunner(self)
        self.runner.line.connect(self._append_log)
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.state_changed.connect(self.state_changed)

        problems = "\n".join(f"• {p}" for p in report.problems) or tr("Nothing is missing.")
        self.why_label = QLabel(problems, self)
        self.why_label.setObjectName("Rs2SamInstallerWhy")
        self.why_label.setWordWrap(True)
        self.where_label = QLabel(self)
        self.where_label.setWordWrap(True)
        self.where_label.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.variant_combo = QComboBox(self)
        for variant in torch_variants():
            self.variant_combo.addItem(tr(VARIANT_LABELS[variant]), variant)
        self.variant_combo.setCurrentIndex(
            max(0, self.variant_combo.findData(default_torch_variant()))
        )
        self.variant_combo.currentIndexChanged.connect(self._update_plan)
        gpu_text = (
            tr("An NVIDIA driver was found (nvidia-smi).")
            if cuda_available()
            else tr("No NVIDIA driver was found (no nvidia-smi).")
        )
        self.gpu_label = QLabel(gpu_text, self)

        fixed = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        self.plan_view = QPlainTextEdit(self)
        self.plan_view.setObjectName("Rs2SamInstallerPlan")
        self.plan_view.setReadOnly(True)
        self.plan_view.setFont(fixed)
        self.plan_view.setMaximumHeight(150)
        self.log_view = QPlainTextEdit(self)
        self.log_view.setObjectName("Rs2SamInstallerLog")
        self.log_view.setReadOnly(True)
        self.log_view.setFont(fixed)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setPlaceholderText(tr("pip's output appears here during the install."))
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("Rs2SamInstallerStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.install_button = QPushButton(tr("Install"), self)
        self.install_button.setObjectName("Rs2SamInstallerInstall")
        self.install_button.clicked.connect(self.start_install)
        self.cancel_button = QPushButton(tr("Cancel install"), self)
        self.cancel_button.setObjectName("Rs2SamInstallerCancel")
        self.cancel_button.clicked.connect(self.runner.cancel)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.addButton(self.install_button, QDialogButtonBox.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ActionRole)
        buttons.rejected.connect(self.reject)
        self.close_button = buttons.button(QDialogButtonBox.Close)

        form = QFormLayout()
        form.addRow(tr("PyTorch build"), self.variant_combo)
        form.addRow("", self.gpu_label)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(tr("<b>Why</b>"), self))
        layout.addWidget(self.why_label)
        layout.addWidget(self.where_label)
        layout.addLayout(form)
        layout.addWidget(QLabel(tr("<b>What will be installed</b> (exact versions)"), self))
        layout.addWidget(self.plan_view)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.log_view, 1)
        layout.addWidget(buttons)
        self.resize(760, 620)
        self.plan: InstallPlan | None = None
        self._update_plan()
        self._set_state_widgets(MISSING)

    # ------------------------------------------------------------------ public
    @property
    def state(self) -> str:
        """One of missing, installing, done, failed, cancelled."""
        return self.runner.state

    def start_install(self) -> None:
        """Install the shown plan (asynchronous)."""
        if self.plan is None or self.state == INSTALLING:
            return
        self.log_view.clear()
        self._set_state_widgets(INSTALLING)
        self.runner.start(self.plan)

    # ------------------------------------------------------------------ slots
    def _update_plan(self, *_args: object) -> None:
        variant = str(self.variant_combo.currentData() or "cpu")
        self.plan = self.plan_factory(variant)
        lines = list(self.plan.requirements)
        lines += ["", tr("Commands (the same steps in a terminal):")]
        lines += self.plan.shell_commands()
        self.plan_view.setPlainText("\n".join(lines))
        where = tr(
            "Installed with QGIS's own Python {python} into the plugin's own folder {folder} "
            "(QGIS's and the system's packages are not touched; the folder is loaded first at "
            "the next QGIS start)."
        ).format(python=self.plan.python, folder=self.plan.target)
        if not self.python.found:
            where += " " + tr(
                "<b>QGIS's Python was not found</b> (tried: {paths}); the install will fail."
            ).format(paths=", ".join(self.python.candidates))
        self.where_label.setText(where)

    def _append_log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress_bar.setValue(round(1000 * fraction))
        step = min(self.runner.index + 1, len(self.plan.steps) if self.plan else 1)
        total = len(self.plan.steps) if self.plan else 1
        if self.state == INSTALLING:
            self.status_label.setText(
                tr("Step {k} of {n}: {text}").format(k=step, n=total, text=text)
            )

    def _on_finished(self, state: str, message: str) -> None:
        self._set_state_widgets(state)
        self.status_label.setText(message)

    def _set_state_widgets(self, state: str) -> None:
        installing = state == INSTALLING
        self.install_button.setEnabled(not installing and state != DONE)
        retry = state in (FAILED, CANCELLED)
        self.install_button.setText(tr("Try again") if retry else tr("Install"))
        self.cancel_button.setEnabled(installing)
        self.variant_combo.setEnabled(not installing and state != DONE)
        self.close_button.setEnabled(not installing)
        if state == MISSING:
            self.status_label.setText(tr("Ready to install."))
            self.progress_bar.setValue(0)
        elif state == INSTALLING:
            self.status_label.setText(tr("Starting…"))
            self.progress_bar.setValue(0)
        elif state != DONE:
            self.progress_bar.setValue(0)

    def reject(self) -> None:
        """Close (Esc, the Close button): not while installing - cancel first."""
        if self.state == INSTALLING:
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        """The window's close button while installing cancels the install, then closes."""
        if self.state == INSTALLING:
            self.runner.cancel()
        super().closeEvent(event)
