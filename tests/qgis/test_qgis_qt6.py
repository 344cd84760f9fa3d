"""QGIS 4 (Qt6 / PyQt6) readiness of the plugin, checked in CI (`make test`, `make lint`).

Two checks, both must report nothing on ``rs2sam_qgis``:

* flake8-qgis (PyPI, the QGIS plugin community's flake8 plugin): its QGS1xx rules (imports
  through ``qgis.PyQt``, no ``exec_`` ...) and QGS4xx Qt6 rules (removed APIs, renamed enums).
  QGS105 (``iface`` passed as an argument) is a style rule, not a Qt6 one: the plugin injects
  ``iface`` on purpose. QGS402 (``QVariant.String`` -> ``QMetaType.Type.QString``) would break
  QGIS 3.22, whose ``QgsField`` takes no ``QMetaType`` (flake8-qgis says so itself); QGIS patches
  ``QVariant.X`` back in on Qt6 builds and its migration script leaves them alone in
  QGIS-3-compatible mode. QGS2xx are flake8-qgis's experimental return-value hints.
* ``tools/qt6_enums.py``: every ``Class.member`` that is a member of an enum nested in a class
  the plugin imports from ``qgis.*`` must use the scoped form PyQt6 requires (flake8-qgis
  lists only some of them). The scoped form also runs on QGIS 3.22 (PyQt5 5.15), which the
  other real-QGIS tests exercise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from qgis_helpers import ROOT

pytestmark = pytest.mark.qgis

FLAKE8_ARGS = ("--select=QGS1,QGS4", "--extend-ignore=QGS105,QGS402")

QT5_ONLY = '''
from PyQt5.QtCore import Qt
from qgis.PyQt.QtWidgets import QDialog, QSizePolicy

def f(iface, dialog: QDialog):
    iface.addDockWidget(Qt.RightDockWidgetArea, dialog)
    policy = QSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
    return dialog.exec_(), policy
'''


def _flake8(*paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flake8", *FLAKE8_ARGS, *paths],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )


def test_flake8_qgis_reports_nothing_on_the_plugin() -> None:
    proc = _flake8("rs2sam_qgis")
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_flake8_qgis_catches_qt5_only_code(tmp_path: Path) -> None:
    sample = tmp_path / "qt5_only.py"
    sample.write_text(QT5_ONLY)
    out = _flake8(str(sample)).stdout
    for code in ("QGS103", "QGS107", "QGS403"):
        assert code in out, out


def test_no_short_enum_names_in_the_plugin() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import qt6_enums
    finally:
        sys.path.pop(0)
    assert qt6_enums.check_paths([ROOT / "rs2sam_qgis"]) == []
    findings = qt6_enums.check_source(QT5_ONLY, "sample.py")
    assert any("'QSizePolicy.Policy.Preferred' instead of 'QSizePolicy.Preferred'" in f
               for f in findings), findings
    fixed = qt6_enums.fix_source(QT5_ONLY, "sample.py")
    assert "QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)" in fixed
    assert qt6_enums.check_source(fixed, "sample.py") == []
