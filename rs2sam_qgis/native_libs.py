"""Keep the backend's wheel-bundled GEOS/GDAL/PROJ apart from the ones QGIS links (Linux).

The ``qgis`` and ``qgis_process`` executables link the distribution's GEOS, GDAL and PROJ, so
those libraries sit in the process's *global* symbol scope. The shapely, rasterio, pyogrio and
pyproj wheels bring their own (newer) copies, and on Linux the dynamic linker resolves their calls
against the global scope first: shapely 2.2 (GEOS 3.14) then calls Debian's GEOS 3.11 for most
functions and its bundled GEOS for functions 3.11 lacks (``GEOSOrientPolygons_r``), mixing two
libraries' objects - QGIS aborts with ``free(): invalid size`` (seen in the desktop and
qgis_process; a plain ``python`` with ``import qgis.core`` is not affected because extension
modules load with ``RTLD_LOCAL``).

The fix: import every compiled module of these packages once with ``RTLD_DEEPBIND``, so each
binds to its own bundled libraries. Windows (per-DLL binding) and macOS (two-level namespaces)
do not have the problem; there this is a no-op. ``RS2SAM_NO_DEEPBIND=1`` switches it off (to
reproduce the crash when debugging).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

PACKAGES = ("shapely", "pyproj", "rasterio", "pyogrio")
"""Wheels that bundle GEOS, PROJ or GDAL and are imported by the backend."""

MARK = "_rs2sam_deepbind"
"""Attribute set on each isolated package, so a reloaded plugin knows it was done."""

_lock = threading.Lock()
_done = {"value": False}


def _compiled_modules(package: str) -> list[str]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    names = []
    for path in sorted(root.rglob("*.so")):
        parts = path.relative_to(root.parent).parts
        names.append(".".join([*parts[:-1], parts[-1].split(".", 1)[0]]))
    return names


def isolate_native_libraries() -> list[str]:
    """Import shapely/pyproj/rasterio's compiled modules with ``RTLD_DEEPBIND`` (once).

    Call it before the backend first uses these packages (the runner does). Thread-safe.

    Returns:
        Packages that were already imported without isolation (nothing can be done for them;
        a warning is logged), empty when all went well or on non-Linux platforms.
    """
    deepbind = getattr(os, "RTLD_DEEPBIND", 0)
    if os.environ.get("RS2SAM_NO_DEEPBIND") == "1":  # escape hatch for debugging
        deepbind = 0
    if not sys.platform.startswith("linux") or not deepbind:
        return []
    with _lock:
        if _done["value"]:
            return []
        already = [
            p
            for p in PACKAGES
            if p in sys.modules and not getattr(sys.modules[p], MARK, False)  # plugin reloads
        ]
        if already:
            logger.warning(
                "%s were imported before the plugin could isolate their bundled GEOS/GDAL/PROJ "
                "from QGIS's; if QGIS crashes, restart it and run the plugin first",
                ", ".join(already),
            )
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | deepbind)
        try:
            for package in PACKAGES:
                if package in already:
                    continue
                for name in _compiled_modules(package):
                    try:
                        importlib.import_module(name)
                    except Exception as exc:
                        logger.debug("not preloading %s: %s", name, exc)
        finally:
            sys.setdlopenflags(flags)
        for package in PACKAGES:
            module = sys.modules.get(package)
            if module is not None and package not in already:
                setattr(module, MARK, True)
        _done["value"] = True
        return already


_torch_done = {"value": False}


def prepare_torch_stack() -> None:
    """Import torch, then triton with ``RTLD_DEEPBIND`` (once; Linux).

    torch imports triton (through ``torch._dynamo``, e.g. from ``torchvision.ops`` that
    open_clip uses). ``libtriton.so`` carries its own LLVM, and inside the QGIS desktop another
    LLVM (Mesa's, loaded for OpenGL) is in the global scope: importing triton normally segfaults
    there (``triton/knobs.py`` importing ``triton._C.libtriton``). torch itself is imported with
    the default flags first, so only triton is deep-bound. The plugin never compiles kernels, so
    this only has to make the import safe.
    """
    deepbind = getattr(os, "RTLD_DEEPBIND", 0)
    if os.environ.get("RS2SAM_NO_DEEPBIND") == "1":
        deepbind = 0
    with _lock:
        if _torch_done["value"]:
            return
        import torch  # noqa: F401 - default flags

        if (
            sys.platform.startswith("linux")
            and deepbind
            and "triton" not in sys.modules
            and importlib.util.find_spec("triton") is not None
        ):
            flags = sys.getdlopenflags()
            sys.setdlopenflags(flags | deepbind)
            try:
                importlib.import_module("triton")
            except Exception as exc:  # torch works without triton on CPU
                logger.warning("triton could not be imported (%s); continuing without it", exc)
            finally:
                sys.setdlopenflags(flags)
        _torch_done["value"] = True
