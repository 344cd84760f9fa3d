"""First-use dependency check: what is missing or incompatible, and why.

Nothing here installs anything (the installer dialog does, with :mod:`.install_plan`). The check
only looks packages up (``importlib.util.find_spec``), except for numpy and ``osgeo.gdal_array``,
which are cheap and must actually be imported to detect the NumPy 1.x/2.x ABI mismatch that
breaks QGIS's own GDAL bindings.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from .i18n import tr
from .pins import (
    EXTRA_PINS,
    NUMPY_1_PIN,
    OPTIONAL,
    REQUIRED,
    SAM2_MIN_NUMPY,
    SAM2_REQUIREMENT,
    numpy_pin,
)

__all__ = [
    "EXTRA_PINS",
    "NUMPY_1_PIN",
    "OPTIONAL",
    "REQUIRED",
    "SAM2_MIN_NUMPY",
    "SAM2_REQUIREMENT",
    "DependencyReport",
    "check_dependencies",
    "numpy_pin",
]

@dataclass
class DependencyReport:
    """Result of :func:`check_dependencies`.

    Attributes:
        missing: Import names that are not installed (e.g. ``["torch", "sam2"]``).
        numpy_version: The numpy version QGIS's Python sees ("" if numpy itself is missing).
        gdal_array_error: Why ``from osgeo import gdal_array`` failed ("" if it works).
        numpy_pin: The numpy requirement that keeps QGIS's GDAL bindings working.
        problems: One human-readable line per problem.
        optional_missing: Packages of the published RS2-SAM 2 weights that are not installed
            (not a problem: every other model runs without them).
        restart_folder: The private folder that holds every missing package although this
            QGIS session cannot import them yet (installed since QGIS started): a restart,
            not another install, fixes it ("" otherwise).
    """

    missing: list[str] = field(default_factory=list)
    numpy_version: str = ""
    gdal_array_error: str = ""
    numpy_pin: str = NUMPY_1_PIN
    problems: list[str] = field(default_factory=list)
    optional_missing: list[str] = field(default_factory=list)
    restart_folder: str = ""

    @property
    def restart_needed(self) -> bool:
        """True when the missing packages are installed and only a QGIS restart is missing."""
        return bool(self.restart_folder)

    @property
    def ok(self) -> bool:
        """True when the backend can run in this Python."""
        return not self.problems

    def summary(self) -> str:
        """One short line for the message bar and the dock's status line."""
        if self.ok:
            return tr("All dependencies are installed.")
        if self.restart_needed:
            return tr("Dependencies installed. Restart QGIS to load them.")
        if self.missing:
            return tr("Python packages missing: {names}.").format(names=", ".join(self.missing))
        return tr("QGIS's Python has incompatible packages (numpy / GDAL).")

    def install_commands(self) -> list[str]:
        """The exact terminal commands that install the pinned set (empty when nothing is wrong).

        They are the installer dialog's steps, for users who prefer a terminal: QGIS's own
        interpreter, the plugin's private folder, never the system site-packages.
        """
        if self.ok:
            return []
        from .install_plan import backend_plan, default_torch_variant

        return backend_plan(self, default_torch_variant()).shell_commands()

    def optional_command(self) -> str:
        """The command that adds the published-weights packages ("" when all are installed)."""
        if not self.optional_missing:
            return ""
        import shlex

        from .interpreter import qgis_python
        from .private_site import deps_dir

        reqs = " ".join(shlex.quote(OPTIONAL[n]) for n in self.optional_missing)
        python = shlex.quote(qgis_python().path)
        target = shlex.quote(str(deps_dir()))
        return f"{python} -m pip install --no-deps --target {target} {reqs}"

    def message(self) -> str:
        """Multi-line text for the log: what is wrong, then how to fix it."""
        if self.ok:
            return tr("All dependencies are installed.")
        if self.restart_needed:
            return tr(
                "Dependencies installed. Restart QGIS to load them: {names} are in {folder}, "
                "which this QGIS session loads at its next start (no new install is needed)."
            ).format(names=", ".join(self.missing), folder=self.restart_folder)
        lines = [tr("Segment by text cannot run in this QGIS Python yet:")]
        lines += [f"  - {p}" for p in self.problems]
        lines.append(
            tr(
                "Fix: Raster > RS2-SAM > Install dependencies… (or the button in the Segment "
                "by text panel) installs them into the plugin's own folder. In a terminal, the "
                "same steps are (then restart QGIS):"
            )
        )
        lines += [f"  {c}" for c in self.install_commands()]
        lines.append(
            tr(
                "The numpy pin keeps QGIS's own GDAL bindings (osgeo.gdal_array) working. "
                "The plugin never installs anything without being asked."
            )
        )
        if self.optional_missing:
            lines.append(
                tr("Optional, for the published RS2-SAM 2 weights: {command}").format(
                    command=self.optional_command()
                )
            )
        return "\n".join(lines)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def installed_for_next_start(names: list[str]) -> str:
    """The private folder holding all of ``names`` that this session does not import from.

    The installer's result waits in ``<folder>.pending`` (or, on a first install, in a
    folder that did not exist when QGIS started, so it is not on ``sys.path``).

    Returns:
        The folder, or "" when the packages are not installed there (or it is already loaded).
    """
    import importlib.machinery
    import sys

    from .private_site import deps_dir, pending_dir

    if not names:
        return ""
    target = deps_dir()
    for folder in (pending_dir(target), target):
        if not folder.is_dir() or str(folder) in sys.path:
            continue
        if all(importlib.machinery.PathFinder.find_spec(n, [str(folder)]) for n in names):
            return str(folder)
    return ""


def check_dependencies() -> DependencyReport:
    """Look for the backend's packages and for a NumPy that QGIS's GDAL can use.

    Returns:
        A :class:`DependencyReport`; ``report.ok`` is True when the plugin can run.
    """
    report = DependencyReport()
    for name in ("torch", "sam2", "open_clip", *[n for n in REQUIRED if n not in ("torch",)]):
        if name not in report.missing and not _installed(name):
            report.missing.append(name)
    report.optional_missing = [n for n in OPTIONAL if not _installed(n)]
    report.restart_folder = installed_for_next_start(report.missing)
    if report.missing:
        report.problems.append(
            tr("missing Python packages: {names}").format(names=", ".join(report.missing))
        )
    try:
        import numpy

        report.numpy_version = str(numpy.__version__)
    except ImportError as exc:  # QGIS always ships numpy, but be honest if it doesn't
        report.problems.append(tr("numpy cannot be imported: {err}").format(err=exc))
        return report
    numpy_major = int(report.numpy_version.split(".")[0])
    try:
        from osgeo import gdal_array  # noqa: F401 - the import itself is the check
    except Exception as exc:
        report.gdal_array_error = f"{type(exc).__name__}: {exc}"
    if report.gdal_array_error:
        if numpy_major >= 2:
            report.problems.append(
                tr(
                    "numpy {version} is installed, but QGIS's GDAL bindings (osgeo.gdal_array) "
                    "were built for NumPy 1.x and fail to import ({err})"
                ).format(version=report.numpy_version, err=report.gdal_array_error)
            )
        else:
            report.problems.append(
                tr("QGIS's GDAL bindings (osgeo.gdal_array) fail to import: {err}").format(
                    err=report.gdal_array_error
                )
            )
    report.numpy_pin = numpy_pin(report.numpy_version, not report.gdal_array_error)
    return report
