"""Where the adaptation engine (``training.adapt``) comes from, like ``_backend`` for ``backend``.

A development checkout imports the top-level ``training`` package; a plugin zip that vendors it
has ``rs2sam_qgis.libs.training``. Importing it loads torch, so this is only called when an
adaptation runs (never at plugin load).
"""

from __future__ import annotations

import importlib
from types import ModuleType

_CANDIDATES = (f"{__package__}.libs.training", "training")


def training_module(submodule: str) -> ModuleType:
    """Import ``<training>.<submodule>`` (e.g. ``"adapt.engine"``).

    Raises:
        ImportError: No copy of the training package is available (its message says so).
    """
    errors = []
    for name in _CANDIDATES:
        try:
            return importlib.import_module(f"{name}.{submodule}")
        except ModuleNotFoundError as exc:
            if exc.name is not None and not name.startswith(exc.name):
                raise  # the package exists but one of its own imports failed: report that
            errors.append(f"{name}: {exc}")
    raise ImportError(
        "the adaptation engine (the 'training' package) is not available in this build of the "
        "plugin (" + "; ".join(errors) + ")"
    )
