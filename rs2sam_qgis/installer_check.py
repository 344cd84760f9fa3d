"""Before an install: which indexes a plan uses, whether they answer, how much it downloads.

:func:`check_plan` is plain Python (it runs on a worker thread); :class:`BackgroundCall` runs
it off the GUI thread and hands the result back on the GUI thread (a ``QTimer`` polls the
future, so no Qt object is touched from the worker).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from qgis.PyQt.QtCore import QObject, QTimer, pyqtSignal

from .i18n import tr
from .install_plan import InstallPlan
from .installer_index import Http, PipSettings, Probe, options_override, probe, read_pip_settings
from .installer_sizes import Resolver, SizeEstimate, human_bytes


@dataclass
class PlanCheck:
    """What :func:`check_plan` found.

    Attributes:
        settings: Pip's settings with the plan's own index options applied.
        extra_probes: One probe per extra index the plan adds (e.g. PyTorch's CPU index).
        estimate: The measured download (None when the check stopped before measuring).
        error: An unexpected failure of the check itself ("" when none).
        local_only: The plan installs from local files only (``--no-index``).
    """

    settings: PipSettings
    extra_probes: list[Probe] = field(default_factory=list)
    estimate: SizeEstimate | None = None
    error: str = ""
    local_only: bool = False

    @property
    def unreachable(self) -> list[Probe]:
        """The plan's extra indexes that did not answer."""
        return [p for p in self.extra_probes if not p.reachable]


def plan_options(plan: InstallPlan) -> list[str]:
    """The index options of the plan's pip steps (``--index-url X``, ``--extra-index-url Y``)."""
    out: list[str] = []
    for step in plan.steps:
        args = list(step.arguments)
        for i, arg in enumerate(args[:-1]):
            if arg in ("--index-url", "-i", "--extra-index-url"):
                out += [arg, args[i + 1]]
    return out


def check_plan(plan: InstallPlan, measure: bool = True) -> PlanCheck:
    """Read pip's settings, probe the plan's extra indexes, measure its download (blocking).

    Args:
        plan: The install plan.
        measure: Also resolve and measure the download (skipped when an extra index the plan
            needs does not answer: the plan cannot run as it is).
    """
    if any("--no-index" in step.arguments for step in plan.steps):
        return PlanCheck(PipSettings(source="--no-index"), local_only=True)
    base = read_pip_settings(plan.python)
    own_extras = [
        plan_options(plan)[i + 1]
        for i, a in enumerate(plan_options(plan))
        if a == "--extra-index-url"
    ]
    settings = options_override(base, plan_options(plan))
    result = PlanCheck(settings)
    try:
        http = Http(settings)
        result.extra_probes = [probe(url, http) for url in own_extras]
        if measure and not result.unreachable:
            indexes = [settings.index_url, *settings.extra_index_urls]
            result.estimate = Resolver(http, indexes).measure(list(plan.requirements))
    except Exception as exc:  # a check must never break the dialog: say it and go on
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def describe_sources(check: PlanCheck) -> str:
    """One sentence: where the packages come from."""
    s = check.settings
    if check.local_only:
        return tr("Packages come from local files (no index is used).")
    text = tr("Packages come from {index} ({source})").format(index=s.index_url, source=s.source)
    if s.extra_index_urls:
        text += tr(" and {extra}").format(extra=", ".join(s.extra_index_urls))
    if s.proxy:
        text += tr(", through the proxy {proxy}").format(proxy=s.proxy)
    return text + "."


def describe_unreachable(probe_: Probe, label: str) -> str:
    """The one sentence on an index that did not answer."""
    return tr(
        "The {label} ({url}) cannot be reached from this computer ({reason}): a proxy or a "
        "PyPI-only mirror may block it."
    ).format(label=label, url=probe_.url, reason=probe_.reason)


def describe_size(estimate: SizeEstimate | None) -> str:
    """The measured download, or why it is not known."""
    if estimate is None:
        return ""
    if not estimate.files:
        return tr("Download size unknown: {why}").format(
            why="; ".join(estimate.problems[:2]) or tr("nothing found on the index")
        )
    size = human_bytes(estimate.total_bytes)
    if estimate.complete:
        return tr(
            "Download: {size} in {n} files, measured from the index's file sizes before "
            "downloading (about twice that on disk once unpacked)."
        ).format(size=size, n=len(estimate.files))
    unknown = [f.project for f in estimate.files if f.size is None]
    why = "; ".join([*estimate.problems[:2], *(f"{p}: size not listed" for p in unknown[:2])])
    return tr("Download: at least {size} in {n} files (not everything could be measured: "
              "{why}).").format(size=size, n=len(estimate.files), why=why)


class BackgroundCall(QObject):
    """Run a blocking function on a worker thread; ``done(result)`` fires on the GUI thread.

    Only the newest call's result is delivered (an earlier one still running is dropped).
    """

    done = pyqtSignal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future[Any] | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._poll)

    @property
    def busy(self) -> bool:
        """True while the newest call has not delivered its result."""
        return self._future is not None

    def call(self, function: Callable[..., Any], *args: Any) -> None:
        """Start ``function(*args)``; the previous call's result will be ignored."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rs2sam-check")
        self._future = self._pool.submit(function, *args)
        self._timer.start()

    def _poll(self) -> None:
        future = self._future
        if future is None or not future.done():
            return
        self._future = None
        self._timer.stop()
        try:
            result = future.result()
        except Exception as exc:  # delivered as data: the dialog shows it
            result = exc
        self.done.emit(result)

    def shutdown(self) -> None:
        """Forget the pending call (the worker finishes on its own; nothing is delivered)."""
        self._future = None
        self._timer.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
