"""Runs an :class:`~.install_plan.InstallPlan` step by step in a ``QProcess`` (never blocks QGIS).

States: ``missing`` (nothing started), ``installing``, ``done``, ``failed``, ``cancelled``.
Every step writes into the plan's staging folder; only when all steps succeeded does the staging
folder replace the private package folder (or wait next to it as ``.pending`` when the old one is
in use, to be promoted at the next QGIS start). A failed or cancelled install leaves the private
folder exactly as it was and removes the staging and scratch folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, pyqtSignal

from .i18n import tr
from .install_plan import InstallPlan, InstallStep
from .log import log_error, log_info
from .private_site import pending_dir

MISSING, INSTALLING, DONE = "missing", "installing", "done"
FAILED, CANCELLED = "failed", "cancelled"
STATES = (MISSING, INSTALLING, DONE, FAILED, CANCELLED)

_COLLECT_SHARE = 0.6  # of a step's progress: "Collecting ..." lines (approach it asymptotically)


def step_fraction(collected: int, installing: bool, finished: bool) -> float:
    """Approximate progress inside one pip step from what it printed so far (0..1).

    pip does not say how many packages it will collect, so "Collecting" lines approach 60 %,
    "Installing collected packages" is 80 % and "Successfully installed" 100 %.
    """
    if finished:
        return 1.0
    if installing:
        return 0.8
    return _COLLECT_SHARE * (1.0 - 0.85**collected)


class PlanRunner(QObject):
    """Run the plan's steps one after the other; report lines, progress and the outcome.

    Signals:
        line(str): One line of the processes' output.
        progress(float, str): Overall fraction done (0..1) and what happens now.
        state_changed(str): One of :data:`STATES`.
        finished(str, str): Final state (done/failed/cancelled) and a one-line message.
    """

    line = pyqtSignal(str)
    progress = pyqtSignal(float, str)
    state_changed = pyqtSignal(str)
    finished = pyqtSignal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = MISSING
        self.plan: InstallPlan | None = None
        self.process: QProcess | None = None
        self.index = 0
        self.message = ""
        self._cancel = False
        self._buffer = ""
        self._tail: list[str] = []
        self._collected = 0
        self._installing = False

    # ------------------------------------------------------------------ public
    def start(self, plan: InstallPlan) -> None:
        """Start the first step (returns at once). Ignored while an install runs."""
        if self.state == INSTALLING:
            return
        self.plan = plan
        self.index = 0
        self._cancel = False
        self._remove(plan.staging, *plan.scratch)
        plan.staging.parent.mkdir(parents=True, exist_ok=True)
        self._set_state(INSTALLING)
        log_info(tr("Installing into {target} with {python}").format(
            target=plan.target, python=plan.python))
        self._start_step()

    def cancel(self) -> None:
        """Stop the running step; the outcome is reported as ``cancelled``."""
        if self.state != INSTALLING:
            return
        self._cancel = True
        if self.process is not None and self.process.state() != QProcess.NotRunning:
            self.process.kill()

    # ------------------------------------------------------------------ steps
    def _start_step(self) -> None:
        if self.plan is None:  # pragma: no cover - start() sets it before any step
            raise RuntimeError("no install plan")
        step = self.plan.steps[self.index]
        self._collected, self._installing, self._tail, self._buffer = 0, False, [], ""
        self._emit_progress(0.0, step.title)
        self.line.emit(f"$ {step.shell_command()}")
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.MergedChannels)
        process.setProcessEnvironment(self._environment(step))
        process.readyReadStandardOutput.connect(self._on_output)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self.process = process
        process.start(step.program, list(step.arguments))

    @staticmethod
    def _environment(step: InstallStep) -> QProcessEnvironment:
        env = QProcessEnvironment.systemEnvironment()
        inherited = env.value("PYTHONPATH", "")
        for key, value in step.env.items():
            expanded = value.replace("{PYTHONPATH}", inherited)
            env.insert(key, expanded.rstrip(";:") if not inherited else expanded)
        env.insert("PYTHONIOENCODING", "utf-8")
        env.insert("PYTHONUNBUFFERED", "1")
        return env

    def _on_output(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", errors="replace")
        self._buffer += text.replace("\r\n", "\n").replace("\r", "\n")
        *lines, self._buffer = self._buffer.split("\n")
        for raw in lines:
            self._handle_line(raw)

    def _handle_line(self, raw: str) -> None:
        text = raw.rstrip()
        if not text:
            return
        self.line.emit(text)
        self._tail = [*self._tail[-40:], text]
        if text.startswith("Collecting "):
            self._collected += 1
        elif text.startswith("Installing collected packages"):
            self._installing = True
        elif text.startswith("Successfully installed"):
            self._installing = True
        else:
            return
        fraction = step_fraction(self._collected, self._installing, False)
        self._emit_progress(fraction, text if len(text) < 120 else text[:117] + "…")

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.FailedToStart or self.plan is None:
            return  # crashes and kills also emit finished()
        step = self.plan.steps[self.index]
        self._finish(
            FAILED,
            tr("Could not start {program}: {err}. Is this QGIS's Python?").format(
                program=step.program, err=self.process.errorString() if self.process else ""
            ),
        )

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        if self.state != INSTALLING or self.plan is None:
            return
        if self._buffer:
            self._handle_line(self._buffer)
            self._buffer = ""
        if self._cancel:
            self._finish(CANCELLED, tr("Cancelled; nothing was installed."))
            return
        if exit_status != QProcess.NormalExit or exit_code != 0:
            self._finish(FAILED, self._failure_message(exit_code))
            return
        self.index += 1
        if self.index < len(self.plan.steps):
            self._start_step()
            return
        self._finish(DONE, self._swap_in())

    def _failure_message(self, exit_code: int) -> str:
        if self.plan is None:  # pragma: no cover - start() sets it before any step
            raise RuntimeError("no install plan")
        step = self.plan.steps[self.index]
        errors = [t for t in self._tail if t.startswith("ERROR") or "Error" in t.split(":")[0]]
        reason = (errors or self._tail or [tr("no output")])[-1]
        if "No module named pip" in "\n".join(self._tail):
            reason = tr(
                "QGIS's Python has no pip. Install it (Debian/Ubuntu: sudo apt install "
                "python3-pip; elsewhere: {python} -m ensurepip) and try again."
            ).format(python=self.plan.python)
        return tr("Step {k} of {n} failed ({title}, exit code {code}): {reason}").format(
            k=self.index + 1, n=len(self.plan.steps), title=step.title, code=exit_code,
            reason=reason,
        )

    def _swap_in(self) -> str:
        """Make the staging folder the private folder (or pending, if that one is in use)."""
        if self.plan is None:  # pragma: no cover - start() sets it before any step
            raise RuntimeError("no install plan")
        target, staging = self.plan.target, self.plan.staging
        try:
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
            where = target
        except OSError:
            pending = pending_dir(target)
            self._remove(pending)
            staging.rename(pending)  # activate() promotes it at the next start
            where = pending
        return tr("Installed into {folder}. Restart QGIS to load the new packages.").format(
            folder=where
        )

    def _finish(self, state: str, message: str) -> None:
        if self.plan is None:  # pragma: no cover - start() sets it before any step
            raise RuntimeError("no install plan")
        if state != DONE:
            self._remove(self.plan.staging)
        self._remove(*self.plan.scratch)
        self.message = message
        (log_info if state == DONE else log_error)(message)
        if state == DONE:
            self._emit_progress(1.0, message)
        self._set_state(state)
        self.finished.emit(state, message)

    # ------------------------------------------------------------------ helpers
    def _emit_progress(self, within_step: float, text: str) -> None:
        if self.plan is None:  # pragma: no cover - start() sets it before any step
            raise RuntimeError("no install plan")
        total = max(1, len(self.plan.steps))
        overall = 1.0 if within_step >= 1.0 and self.index >= total - 1 else (
            (self.index + min(within_step, 1.0)) / total
        )
        self.progress.emit(min(1.0, overall), text)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    @staticmethod
    def _remove(*folders: Path) -> None:
        for folder in folders:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
