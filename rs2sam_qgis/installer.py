"""Runs an :class:`~.install_plan.InstallPlan` step by step in a ``QProcess`` (never blocks QGIS).

States: ``missing`` (nothing started), ``installing``, ``done``, ``failed``, ``cancelled``.
Every step writes into the plan's staging folder; only when all steps succeeded does the staging
folder replace the private package folder (or wait next to it as ``.pending`` when the old one is
in use, to be promoted at the next QGIS start). A failed or cancelled install leaves the private
folder exactly as it was and removes the staging and scratch folders.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, pyqtSignal

from .i18n import tr
from .install_plan import InstallPlan, InstallStep
from .installer_record import InstallRecord, folder_size, write_record
from .installer_sizes import human_bytes
from .log import log_error, log_info
from .private_site import pending_dir, temp_dir

MISSING, INSTALLING, DONE = "missing", "installing", "done"
FAILED, CANCELLED = "failed", "cancelled"
STATES = (MISSING, INSTALLING, DONE, FAILED, CANCELLED)

_COLLECT_SHARE = 0.6  # of a step's progress: "Collecting ..." lines (approach it asymptotically)
HEARTBEAT_MS = 1000
"""How often the runner checks for silence while a step runs."""
QUIET_S = 3.0
"""After this many seconds without a line from pip, the runner reports what it measures."""


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
        self._last_line = 0.0
        self._started = 0.0
        self._phase = ""
        self.record: InstallRecord | None = None
        self.expected_bytes = 0
        self.heartbeat = QTimer(self)
        self.heartbeat.setInterval(HEARTBEAT_MS)
        self.heartbeat.timeout.connect(self._on_heartbeat)

    # ------------------------------------------------------------------ public
    def start(
        self, plan: InstallPlan, record: InstallRecord | None = None, expected_bytes: int = 0
    ) -> None:
        """Start the first step (returns at once). Ignored while an install runs.

        Args:
            plan: What to run.
            record: What to store in the private folder when the install succeeds (variant,
                index used, ...); None stores the requirements and the interpreter only.
            expected_bytes: Measured download size (0 = unknown), for the progress while pip
                unpacks without printing anything.
        """
        if self.state == INSTALLING:
            return
        self.plan = plan
        self.index = 0
        self._cancel = False
        self.record = record or InstallRecord(requirements=list(plan.requirements))
        self.record.python = self.record.python or plan.python
        self.expected_bytes = expected_bytes
        self._remove(plan.staging, temp_dir(plan.target), *plan.scratch)
        plan.staging.parent.mkdir(parents=True, exist_ok=True)
        temp_dir(plan.target).mkdir(parents=True, exist_ok=True)
        self._set_state(INSTALLING)
        log_info(tr("Installing into {target} with {python}").format(
            target=plan.target, python=plan.python))
        if self.record.index_url:
            log_info(tr("Packages from {index} ({source})").format(
                index=" + ".join([self.record.index_url, *self.record.extra_index_urls]),
                source=self.record.index_source))
        self._started = time.monotonic()
        self.heartbeat.start()
        self._start_step()

    def cancel(self) -> None:
        """Stop the running step; the outcome is reported as ``cancelled``."""
        if self.state != INSTALLING:
            return
        self._cancel = True
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.kill()

    # ------------------------------------------------------------------ steps
    def _start_step(self) -> None:
        if self.plan is None:  # pragma: no cover - start() sets it before any step
            raise RuntimeError("no install plan")
        step = self.plan.steps[self.index]
        self._collected, self._installing, self._tail, self._buffer = 0, False, [], ""
        self._phase = step.title
        self._last_line = time.monotonic()
        self._emit_progress(0.0, step.title)
        self.line.emit(f"$ {step.shell_command()}")
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.setProcessEnvironment(self._step_environment(step))
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

    def _step_environment(self, step: InstallStep) -> QProcessEnvironment:
        env = self._environment(step)
        if self.plan is not None:  # pip unpacks here: its growth is the silent phase's progress
            for name in ("TMPDIR", "TEMP", "TMP"):
                env.insert(name, str(temp_dir(self.plan.target)))
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
        self._last_line = time.monotonic()
        self._tail = [*self._tail[-40:], text]
        if text.startswith("Collecting "):
            self._collected += 1
        elif text.startswith("Installing collected packages"):
            self._installing = True
        elif text.startswith("Successfully installed"):
            self._installing = True
        else:
            return
        self._phase = text if len(text) < 120 else text[:117] + "…"
        fraction = step_fraction(self._collected, self._installing, False)
        self._emit_progress(fraction, self._phase)

    def _on_heartbeat(self) -> None:
        """Pip prints nothing while it unpacks (minutes for torch): say what is measured."""
        if self.state != INSTALLING or self.plan is None:
            return
        now = time.monotonic()
        if now - self._last_line < QUIET_S:
            return
        written = folder_size(temp_dir(self.plan.target)) + folder_size(self.plan.staging)
        text = tr("{phase} — still working: {mb} written so far, {s:.0f} s").format(
            phase=self._phase, mb=human_bytes(written), s=now - self._started
        )
        fraction = step_fraction(self._collected, self._installing, False)
        if self._installing and self.expected_bytes:
            fraction = 0.8 + 0.19 * min(1.0, written / (2.0 * self.expected_bytes))
        self.line.emit(f"[{text}]")
        self._emit_progress(fraction, text)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart or self.plan is None:
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
        if exit_status != QProcess.ExitStatus.NormalExit or exit_code != 0:
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
        unreachable = unreachable_hosts(self._tail)
        if unreachable:
            reason = tr(
                "the package index {hosts} could not be reached (pip retried and gave up); a "
                "proxy or a PyPI-only mirror may block it. Last message: {reason}"
            ).format(hosts=", ".join(unreachable), reason=reason)
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
        if self.record is not None:
            try:
                write_record(where, self.record)
            except OSError as exc:  # the install itself is complete
                log_error(tr("Could not write the install record: {err}").format(err=exc))
        return tr("Installed into {folder}. Restart QGIS to load the new packages.").format(
            folder=where
        )

    def _finish(self, state: str, message: str) -> None:
        if self.plan is None:  # pragma: no cover - start() sets it before any step
            raise RuntimeError("no install plan")
        self.heartbeat.stop()
        if state != DONE:
            self._remove(self.plan.staging)
        self._remove(temp_dir(self.plan.target), *self.plan.scratch)
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


def unreachable_hosts(lines: list[str]) -> list[str]:
    """The indexes pip could not reach, from its output.

    pip names the indexes once ("Looking in indexes: a, b") and then only the path of each
    failed request ("WARNING: Retrying (...) after connection broken by ...: /whl/cpu/torch/"),
    or a whole URL ("Could not fetch URL https://...").
    """
    import re

    indexes: list[str] = []
    found: list[str] = []
    for line in lines:
        if line.startswith("Looking in indexes:"):
            indexes = [u.strip() for u in line.split(":", 1)[1].split(",") if u.strip()]
        elif "Could not fetch URL" in line:
            match = re.search(r"https?://[^\s:]+(?::\d+)?[^\s:]*", line)
            if match:
                found.append(_index_of(match.group(0), indexes))
        elif "Retrying (Retry(" in line:
            path = line.rstrip().rsplit(": ", 1)[-1]
            found.append(_index_of(path, indexes))
    return list(dict.fromkeys(f for f in found if f))


def _index_of(url_or_path: str, indexes: list[str]) -> str:
    """The index a failed request belonged to (the URL or path itself when none matches)."""
    from urllib.parse import urlsplit

    path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path
    for index in indexes:
        index_path = urlsplit(index).path.rstrip("/")
        if index_path and path.startswith(index_path + "/"):
            if "://" not in url_or_path or urlsplit(url_or_path).netloc == urlsplit(index).netloc:
                return index
    return url_or_path
