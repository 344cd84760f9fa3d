"""The one module that knows where ``backend`` comes from.

A plugin built with ``make plugin`` carries its own copy in ``rs2sam_qgis/libs/backend`` (imported
as ``rs2sam_qgis.libs.backend``, so it can't collide with another package called ``backend``).
A development checkout (the repo on ``sys.path``) uses the top-level ``backend`` package.
Importing ``backend`` is cheap: its heavy parts load lazily.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

_CANDIDATES = (f"{__package__}.libs.backend", "backend")


def get_backend() -> ModuleType:
    """Return the backend package (vendored copy first).

    Raises:
        ImportError: Neither copy can be imported (a broken build).
    """
    errors = []
    for name in _CANDIDATES:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not name.startswith(exc.name):
                raise  # the package exists but one of its own imports failed: report that
            errors.append(f"{name}: {exc}")
    raise ImportError("the RS2-SAM backend is not available (" + "; ".join(errors) + ")")


def backend_module(submodule: str) -> ModuleType:
    """Import ``<backend>.<submodule>`` (e.g. ``"errors"``, ``"standins"``) from the same copy."""
    return importlib.import_module(f"{get_backend().__name__}.{submodule}")


def backend_dir() -> Path:
    """Folder of the backend package in use (for the bundled weights)."""
    return Path(get_backend().__file__).resolve().parent


def bundled_checkpoint() -> Path | None:
    """The default weights shipped with the plugin (``backend/weights/default.safetensors``)."""
    path = backend_dir() / "weights" / "default.safetensors"
    return path if path.is_file() else None
