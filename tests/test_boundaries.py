"""The import-direction contract of style_and_layout.md, checked in fresh interpreters."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# module -> top-level packages that importing it must not load
BOUNDARIES: dict[str, tuple[str, ...]] = {
    "backend": ("qgis", "PyQt5", "torch", "rasterio", "sam2", "open_clip"),
    "backend.errors": ("qgis", "PyQt5", "torch", "rasterio"),
    "backend.types": ("qgis", "PyQt5", "torch", "rasterio"),
    "backend.pipeline": ("qgis", "PyQt5", "torch", "rasterio"),
    "backend.text.lexicon": ("qgis", "PyQt5", "torch", "rasterio", "numpy"),
    "backend.geo": ("qgis", "PyQt5", "torch", "sam2", "open_clip"),
    "backend.geo.tiling": ("qgis", "PyQt5", "torch", "rasterio"),
    "backend.geo.raster": ("qgis", "PyQt5", "torch", "sam2", "open_clip"),
    "backend.geo.vectorize": ("qgis", "PyQt5", "torch", "sam2", "open_clip"),
    "backend.model": ("qgis", "PyQt5", "rasterio"),
    "backend.model.configs": ("qgis", "PyQt5", "torch", "sam2", "open_clip", "rasterio"),
    "backend.model.segmenter": ("qgis", "PyQt5", "rasterio"),
    "training": ("qgis", "PyQt5"),
    "rs2sam_qgis": ("torch", "rasterio", "sam2", "open_clip"),
}


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize(("module", "forbidden"), sorted(BOUNDARIES.items()))
def test_import_boundaries(module: str, forbidden: tuple[str, ...]) -> None:
    if not _exists(module):
        pytest.fail(f"{module} does not exist; the layout of style_and_layout.md B2 requires it")
    code = textwrap.dedent(
        f"""
        import importlib, sys
        importlib.import_module({module!r})
        leaked = sorted(n for n in {forbidden!r} if n in sys.modules)
        print(",".join(leaked))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    leaked = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert leaked == "", f"importing {module} loads {leaked}"


def test_walk_imports_of_backend_geo_have_no_torch() -> None:
    """Importing every backend.geo module together still loads no torch."""
    geo = ROOT / "backend" / "geo"
    modules = sorted(f"backend.geo.{p.stem}" for p in geo.glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("False")


def test_model_package_never_imports_rasterio_or_qgis_in_source() -> None:
    """A static check as well: no import statement of rasterio/qgis anywhere in backend/model."""
    offenders = []
    for path in (ROOT / "backend" / "model").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")) and any(
                f" {bad}" in stripped or f" {bad}." in stripped for bad in ("rasterio", "qgis")
            ):
                offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert offenders == []


def test_training_never_imports_qgis_in_source() -> None:
    offenders = []
    for path in (ROOT / "training").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import qgis", "from qgis", "from PyQt5", "import PyQt5")):
                offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert offenders == []
