"""The "Install dependencies" dialog: what is missing and why, what will be installed, a live log.

The dialog is a view over :class:`~.installer.PlanRunner`; what runs comes from a plan factory
(default: :func:`~.install_plan.backend_plan` for the chosen torch build), so tests can run a
small real package through exactly the same code.

Before the user clicks Install, a background check (:mod:`.installer_check`) reads pip's own
settings, says which index the packages come from, probes the extra index the chosen build
needs (PyTorch's CPU index on Linux) and measures the download from the index's file sizes.
When that index does not answer (a proxy, a PyPI-only mirror), the dialog says so in one
sentence and offers PyPI's own torch build instead, with its measured size. Opened again after
an install, it shows what is installed, where and how big, and offers repair and removal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QCloseEvent, QFontDatabase
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .deps import DependencyReport
from .i18n import tr
from .install_plan import (
    FALLBACK_VARIANT,
    InstallPlan,
    backend_plan,
    cuda_available,
    default_torch_variant,
    torch_variants,
)
from .installer import CANCELLED, DONE, FAILED, INSTALLING, MISSING, PlanRunner
from .installer_check import (
    BackgroundCall,
    PlanCheck,
    check_plan,
    describe_size,
    describe_sources,
    describe_unreachable,
)
from .installer_record import InstallRecord, read_record, remove_install
from .installer_sizes import human_bytes
from .interpreter import PythonLocation, qgis_python

PlanFactory = Callable[[str], InstallPlan]
"""torch variant (``cpu``/``cuda``) -> the plan to run."""

VARIANT_LABELS = {
    "cpu": "CPU (works on every computer)",
    "cuda": "NVIDIA GPU, CUDA (needs an NVIDIA driver)",
    "pypi": "PyPI's own build (from the index pip uses; runs on a CPU too)",
}
INDEX_LABELS = {"cpu": "PyTorch CPU package index", "cuda": "PyTorch CUDA package index"}


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
        self.where_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

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
        self.index_label = QLabel(tr("Checking the package index…"), self)
        self.index_label.setObjectName("Rs2SamInstallerIndex")
        self.index_label.setWordWrap(True)
        self.index_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.size_label = QLabel(self)
        self.size_label.setObjectName("Rs2SamInstallerSize")
        self.size_label.setWordWrap(True)
        self.installed_label = QLabel(self)
        self.installed_label.setObjectName("Rs2SamInstallerInstalled")
        self.installed_label.setWordWrap(True)
        self.installed_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.fallback_note = ""
        self.last_check: PlanCheck | None = None
        self.record: InstallRecord | None = None
        self.confirm: Callable[[str], bool] = self._ask
        self.check = BackgroundCall(self)
        self.check.done.connect(self._on_check_done)

        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
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
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.install_button = QPushButton(tr("Install"), self)
        self.install_button.setObjectName("Rs2SamInstallerInstall")
        self.install_button.clicked.connect(self.start_install)
        self.cancel_button = QPushButton(tr("Cancel install"), self)
        self.cancel_button.setObjectName("Rs2SamInstallerCancel")
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.remove_button = QPushButton(tr("Remove…"), self)
        self.remove_button.setObjectName("Rs2SamInstallerRemove")
        self.remove_button.clicked.connect(self.remove_installed)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.remove_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.close_button = buttons.button(QDialogButtonBox.StandardButton.Close)

        form = QFormLayout()
        form.addRow(tr("PyTorch build"), self.variant_combo)
        form.addRow("", self.gpu_label)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(tr("<b>Why</b>"), self))
        layout.addWidget(self.why_label)
        layout.addWidget(self.installed_label)
        layout.addWidget(self.where_label)
        layout.addLayout(form)
        layout.addWidget(self.index_label)
        layout.addWidget(self.size_label)
        layout.addWidget(QLabel(tr("<b>What will be installed</b> (exact versions)"), self))
        layout.addWidget(self.plan_view)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.log_view, 1)
        layout.addWidget(buttons)
        self.resize(760, 620)
        self.plan: InstallPlan | None = None
        self._update_plan()
        self._show_installed()
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
        check = self.last_check
        record = InstallRecord(
            variant=self.variant,
            requirements=list(self.plan.requirements),
            index_url=check.settings.index_url if check and not check.local_only else "",
            index_source=check.settings.source if check else "",
            extra_index_urls=list(check.settings.extra_index_urls) if check else [],
        )
        estimate = check.estimate if check else None
        self.runner.start(self.plan, record, estimate.total_bytes if estimate else 0)

    @property
    def variant(self) -> str:
        """The chosen torch build (``cpu``, ``cuda``, ``pypi``)."""
        return str(self.variant_combo.currentData() or "cpu")

    @property
    def checking(self) -> bool:
        """True while the index check of the shown plan runs."""
        return self.check.busy

    def remove_installed(self) -> bool:
        """Delete the installed packages after asking; True when they were removed."""
        if self.plan is None or self.record is None or self.state == INSTALLING:
            return False
        question = tr(
            "Remove the packages in {folder} ({size})? The plugin cannot run without them "
            "until they are installed again."
        ).format(folder=self.record.folder, size=human_bytes(self.record.size_bytes))
        if not self.confirm(question):
            return False
        loaded = self.record.folder in sys.path
        left = remove_install(self.plan.target)
        message = tr("Removed {folder}.").format(folder=self.record.folder)
        if left or loaded:
            message += " " + tr("Restart QGIS to finish: this session still has them loaded.")
        self._show_installed()
        self.status_label.setText(message)
        return True

    def _ask(self, question: str) -> bool:
        answer = QMessageBox.question(self, self.windowTitle(), question)
        return answer == QMessageBox.StandardButton.Yes

    def _show_installed(self) -> None:
        self.record = read_record(self.plan.target) if self.plan is not None else None
        record = self.record
        self.remove_button.setVisible(record is not None)
        if record is None:
            self.installed_label.setText("")
            self.installed_label.setVisible(False)
            return
        build = tr(VARIANT_LABELS[record.variant]) if record.variant in VARIANT_LABELS else "?"
        source = record.index_url or tr("local files")
        self.installed_label.setText(
            tr(
                "<b>Installed</b> {when}: {n} requirement(s), torch build: {build}, in "
                "{folder} ({size} on disk), from {source}. Install again to repair it, or "
                "remove it."
            ).format(
                when=record.installed_at or "", n=len(record.requirements), build=build,
                folder=record.folder, size=human_bytes(record.size_bytes), source=source,
            )
        )
        self.installed_label.setVisible(True)

    # ------------------------------------------------------------------ slots
    def _update_plan(self, *_args: object) -> None:
        variant = self.variant
        self.plan = self.plan_factory(variant)
        self.last_check = None
        self.index_label.setText(
            " ".join([self.fallback_note, tr("Checking the package index…")]).strip()
        )
        self.size_label.setText(tr("Measuring the download…"))
        self.check.call(check_plan, self.plan)
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

    def _on_check_done(self, result: object) -> None:
        if not isinstance(result, PlanCheck):
            self.index_label.setText(tr("The package index could not be checked: {err}").format(
                err=result))
            self.size_label.setText("")
            return
        self.last_check = result
        if result.unreachable and self.variant != FALLBACK_VARIANT:
            label = tr(INDEX_LABELS.get(self.variant, "package index of this build"))
            self.fallback_note = describe_unreachable(result.unreachable[0], label)
            self._offer_fallback()
            return
        text = describe_sources(result)
        if result.error:
            text += " " + tr("(The check failed: {err})").format(err=result.error)
        self.index_label.setText(" ".join([self.fallback_note, text]).strip())
        size = describe_size(result.estimate)
        if self.fallback_note and self.variant == FALLBACK_VARIANT:
            size = tr("Offered instead: {build}. {size}").format(
                build=tr(VARIANT_LABELS[FALLBACK_VARIANT]), size=size)
        self.size_label.setText(size)

    def _offer_fallback(self) -> None:
        """Add PyPI's own build to the choices and select it (the plan is checked again)."""
        if self.variant_combo.findData(FALLBACK_VARIANT) < 0:
            self.variant_combo.addItem(tr(VARIANT_LABELS[FALLBACK_VARIANT]), FALLBACK_VARIANT)
        self.variant_combo.setCurrentIndex(self.variant_combo.findData(FALLBACK_VARIANT))

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
        if state == DONE:
            self._show_installed()
        self.status_label.setText(message)

    def _set_state_widgets(self, state: str) -> None:
        installing = state == INSTALLING
        self.install_button.setEnabled(not installing and state != DONE)
        retry = state in (FAILED, CANCELLED)
        label = tr("Repair (install again)") if self.record is not None else tr("Install")
        self.install_button.setText(tr("Try again") if retry else label)
        self.remove_button.setEnabled(not installing and self.record is not None)
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

    def done(self, result: int) -> None:
        """Closing forgets a running index check (its result is not delivered)."""
        if self.state != INSTALLING:
            self.check.shutdown()
        super().done(result)
