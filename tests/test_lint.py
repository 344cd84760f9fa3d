"""Style gates that CI enforces through `make test`: ruff on all code, Bandit on shipped code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `make setup`")
    return found


def test_ruff_is_clean() -> None:
    proc = subprocess.run(
        [_tool("ruff"), "check", "backend", "training", "rs2sam_qgis", "tests", "bench", "tools"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_bandit_is_clean_on_what_ships() -> None:
    """plugins.qgis.org blocks uploads on Bandit findings; the plugin vendors the backend."""
    proc = subprocess.run(
        [_tool("bandit"), "-q", "-r", "rs2sam_qgis", "backend", "-c", ".bandit.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
