r"""Which Python interpreter is QGIS's own (the one ``pip`` must run with).

Inside QGIS, ``sys.executable`` is not to be trusted: the desktop embeds Python, so it is the
QGIS binary itself (``qgis-bin.exe``, ``QGIS.app/Contents/MacOS/QGIS``) or, on Linux, whatever
``python3`` the embedded interpreter found first on ``PATH`` (e.g. a pyenv shim), which is a
*different* Python. What is reliable is ``sys.exec_prefix`` (where the running interpreter's
files are) and the QGIS install folders:

* Linux (distribution packages, conda, a venv): ``<exec_prefix>/bin/pythonX.Y``.
* Windows, OSGeo4W and the standalone installer: ``<exec_prefix>\python.exe``
  (``...\apps\Python312\python.exe``), else ``python.exe``/``python3.exe`` next to
  ``qgis-bin.exe`` in ``...\bin``.
* macOS, QGIS.app: ``Contents/MacOS/bin/python3`` (official builds), or the ``pythonX.Y`` that
  newer bundles put directly in ``Contents/MacOS``; ``Contents/MacOS`` is both the folder of
  the ``QGIS`` executable and ``QgsApplication.prefixPath()``.

:func:`resolve_python` is pure (paths and an ``exists`` check are passed in) so every platform is
unit-tested on any machine; :func:`qgis_python` feeds it the running process's values.
"""

from __future__ import annotations

import ntpath
import posixpath
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PythonLocation:
    """The interpreter found for QGIS.

    Attributes:
        path: Absolute path of the interpreter executable.
        found: True when ``path`` exists; False means no candidate existed and ``path`` is the
            most likely one (shown to the user, who then has to find it).
        candidates: Every path that was tried, in order (for the log and error messages).
    """

    path: str
    found: bool
    candidates: tuple[str, ...]


def _is_python_name(name: str) -> bool:
    stem = name.lower().removesuffix(".exe")
    return stem == "python" or stem.startswith("python3")


def python_candidates(
    platform: str,
    executable: str,
    exec_prefix: str,
    version: tuple[int, int],
    qgis_prefix: str = "",
) -> list[str]:
    """Paths where QGIS's interpreter may be, most reliable first.

    Args:
        platform: ``sys.platform`` value (``"linux"``, ``"win32"``, ``"darwin"``).
        executable: ``sys.executable`` of the running process (QGIS binary or a python).
        exec_prefix: ``sys.exec_prefix`` of the running interpreter.
        version: ``sys.version_info[:2]`` of the running interpreter.
        qgis_prefix: ``QgsApplication.prefixPath()`` ("" when unknown).

    Returns:
        Candidate paths (duplicates removed), spelled with the platform's separators.
    """
    major, minor = version
    out: list[str] = []
    if platform.startswith("win"):
        join, dirname, basename = ntpath.join, ntpath.dirname, ntpath.basename
        exe_dir = dirname(executable)
        if exec_prefix:  # OSGeo4W/standalone: apps\PythonXY; a venv: Scripts
            out += [join(exec_prefix, "python.exe"), join(exec_prefix, "Scripts", "python.exe")]
        if _is_python_name(basename(executable)):
            out.append(executable)
        for folder in (exe_dir, join(qgis_prefix, "..", "..", "bin") if qgis_prefix else ""):
            if folder:
                out += [join(folder, "python.exe"), join(folder, "python3.exe")]
        return [ntpath.normpath(p) for p in dict.fromkeys(out)]
    join, dirname, basename = posixpath.join, posixpath.dirname, posixpath.basename
    versioned = f"python{major}.{minor}"
    if platform == "darwin":
        bundles = [dirname(executable)] if basename(executable) == "QGIS" else []
        bundles += [qgis_prefix] if qgis_prefix else []
        for macos in bundles:
            out += [
                join(macos, "bin", "python3"),
                join(macos, "bin", versioned),
                join(macos, versioned),
                join(macos, "python3"),
            ]
    if exec_prefix:
        out += [join(exec_prefix, "bin", versioned), join(exec_prefix, "bin", "python3")]
    if _is_python_name(basename(executable)) and (
        not exec_prefix or posixpath.normpath(executable).startswith(exec_prefix.rstrip("/") + "/")
    ):
        out.append(executable)  # a python of this very prefix (venv, conda, /usr)
    return [posixpath.normpath(p) for p in dict.fromkeys(out)]


def resolve_python(
    platform: str,
    executable: str,
    exec_prefix: str,
    version: tuple[int, int],
    qgis_prefix: str = "",
    exists: Callable[[str], bool] | None = None,
) -> PythonLocation:
    """The first existing candidate of :func:`python_candidates`.

    Args:
        platform: ``sys.platform`` value.
        executable: ``sys.executable`` of the running process.
        exec_prefix: ``sys.exec_prefix`` of the running interpreter.
        version: ``sys.version_info[:2]``.
        qgis_prefix: ``QgsApplication.prefixPath()`` ("" when unknown).
        exists: File test (default :func:`os.path.isfile`); tests pass a fake.

    Returns:
        The location; ``found`` is False when no candidate exists (then ``path`` is the first
        candidate, or ``executable`` when there is none).
    """
    check = exists or (lambda p: Path(p).is_file())
    candidates = python_candidates(platform, executable, exec_prefix, version, qgis_prefix)
    for candidate in candidates:
        if check(candidate):
            return PythonLocation(candidate, True, tuple(candidates))
    fallback = candidates[0] if candidates else executable
    return PythonLocation(fallback, False, tuple(candidates))


def _qgis_prefix() -> str:
    try:
        from qgis.core import QgsApplication

        return str(QgsApplication.prefixPath() or "")
    except Exception:  # no QGIS application (plain Python): the prefix is optional
        return ""


def qgis_python() -> PythonLocation:
    """QGIS's own interpreter, resolved from the running process."""
    return resolve_python(
        sys.platform,
        sys.executable or "",
        sys.exec_prefix,
        (sys.version_info[0], sys.version_info[1]),
        _qgis_prefix(),
    )
