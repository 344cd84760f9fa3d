"""QGIS's own interpreter on Linux, Windows (OSGeo4W, standalone) and macOS, with faked paths."""

from __future__ import annotations

import sys

import pytest

from rs2sam_qgis.interpreter import python_candidates, qgis_python, resolve_python


def _only(*paths: str):
    existing = set(paths)
    return lambda p: p in existing


def test_linux_debian_ignores_a_pyenv_shim_on_path() -> None:
    """The trial's bug: the embedded Python reported the pyenv shim found on PATH."""
    found = resolve_python(
        "linux",
        "/root/.pyenv/shims/python3",
        "/usr",
        (3, 11),
        "/usr",
        exists=_only("/usr/bin/python3.11", "/usr/bin/python3", "/root/.pyenv/shims/python3"),
    )
    assert found.path == "/usr/bin/python3.11" and found.found
    assert "/root/.pyenv/shims/python3" not in found.candidates


def test_linux_qgis_binary_as_executable_and_only_python3() -> None:
    found = resolve_python(
        "linux", "/usr/bin/qgis", "/usr", (3, 12), "/usr", exists=_only("/usr/bin/python3")
    )
    assert found.path == "/usr/bin/python3" and found.found


def test_linux_venv_and_conda_use_their_own_prefix() -> None:
    venv = resolve_python(
        "linux",
        "/home/a/venv/bin/python",
        "/home/a/venv",
        (3, 11),
        exists=_only("/home/a/venv/bin/python3.11"),
    )
    assert venv.path == "/home/a/venv/bin/python3.11"
    conda = resolve_python(
        "linux",
        "/opt/conda/envs/qgis/bin/qgis",
        "/opt/conda/envs/qgis",
        (3, 12),
        "/opt/conda/envs/qgis",
        exists=_only("/opt/conda/envs/qgis/bin/python3.12"),
    )
    assert conda.path == "/opt/conda/envs/qgis/bin/python3.12"


def test_windows_osgeo4w_prefers_the_python_of_exec_prefix() -> None:
    found = resolve_python(
        "win32",
        r"C:\OSGeo4W\bin\qgis-ltr-bin.exe",
        r"C:\OSGeo4W\apps\Python312",
        (3, 12),
        "C:/OSGeo4W/apps/qgis-ltr",
        exists=_only(
            r"C:\OSGeo4W\apps\Python312\python.exe",
            r"C:\OSGeo4W\bin\python.exe",
            r"C:\OSGeo4W\bin\python3.exe",
        ),
    )
    assert found.path == r"C:\OSGeo4W\apps\Python312\python.exe"
    assert r"C:\OSGeo4W\bin\qgis-ltr-bin.exe" not in found.candidates


def test_windows_standalone_falls_back_to_python3_next_to_qgis_bin() -> None:
    root = r"C:\Program Files\QGIS 3.34.1"
    found = resolve_python(
        "win32",
        root + r"\bin\qgis-bin.exe",
        root + r"\apps\Python312",
        (3, 12),
        "C:/Program Files/QGIS 3.34.1/apps/qgis",
        exists=_only(root + r"\bin\python3.exe"),
    )
    assert found.path == root + r"\bin\python3.exe" and found.found
    # via QgsApplication.prefixPath() (apps\qgis -> ..\..\bin) when the exe is elsewhere
    found = resolve_python(
        "win32",
        r"C:\somewhere\qgis-bin.exe",
        "",
        (3, 12),
        "C:/Program Files/QGIS 3.34.1/apps/qgis",
        exists=_only(root + r"\bin\python.exe"),
    )
    assert found.path == root + r"\bin\python.exe"


def test_macos_qgis_app_bundle() -> None:
    macos = "/Applications/QGIS.app/Contents/MacOS"
    frameworks = "/Applications/QGIS.app/Contents/Frameworks/Python.framework/Versions/3.9"
    found = resolve_python(
        "darwin",
        macos + "/QGIS",
        frameworks,
        (3, 9),
        macos,
        exists=_only(macos + "/bin/python3", frameworks + "/bin/python3.9"),
    )
    assert found.path == macos + "/bin/python3"
    newer = resolve_python(
        "darwin", macos + "/QGIS", "", (3, 12), macos, exists=_only(macos + "/python3.12")
    )
    assert newer.path == macos + "/python3.12"


def test_nothing_found_is_reported_with_the_candidates() -> None:
    found = resolve_python("linux", "/usr/bin/qgis", "/opt/q", (3, 11), exists=lambda _p: False)
    assert not found.found
    assert found.path == "/opt/q/bin/python3.11"
    assert found.candidates == ("/opt/q/bin/python3.11", "/opt/q/bin/python3")
    assert python_candidates("win32", r"C:\x\qgis-bin.exe", "", (3, 12))[0] == r"C:\x\python.exe"


@pytest.mark.qgis
def test_the_running_interpreter_is_found_and_is_this_python() -> None:
    """For real, on this machine: the resolved interpreter runs with this process's prefix."""
    import subprocess

    found = qgis_python()
    assert found.found, found.candidates
    proc = subprocess.run(
        [found.path, "-c", "import sys; print(sys.prefix, sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.split(" ", 1) == [sys.prefix, f"{tuple(sys.version_info[:2])}\n"]
