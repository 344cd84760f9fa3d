"""The plugin's private package folder: where the installer puts torch, sam2, ... for QGIS.

Packages are installed with QGIS's own interpreter into one folder per user and interpreter
(``<user data>/rs2sam_qgis/<cache tag>``, e.g. ``~/.local/share/rs2sam_qgis/cpython-311``), never
into the system site-packages and never into the plugin folder (an upgrade through the Plugin
Manager replaces that folder). The folder does not depend on the QGIS profile, so every profile
and ``qgis_process`` see it. ``RS2SAM_DEPS_DIR`` overrides the parent folder (tests, shared
installs).

:func:`activate` runs when QGIS imports the plugin package, before anything else of the plugin
is imported: it promotes a finished install that could not be swapped in while QGIS was running
(``<folder>.pending``) and puts the folder first on ``sys.path``, processing its ``.pth`` files.
Only the standard library is used here, so it is cheap at QGIS start-up.
"""

from __future__ import annotations

import os
import shutil
import site
import sys
from pathlib import Path

ENV_VAR = "RS2SAM_DEPS_DIR"
"""Environment variable that overrides the parent folder of the private package folders."""

PENDING_SUFFIX = ".pending"
STAGING_SUFFIX = ".staging"
TEMP_SUFFIX = ".tmp"
REMOVED_SUFFIX = ".remove"


def user_data_dir() -> Path:
    """The per-user data folder of the platform (no Qt needed).

    Returns:
        ``%LOCALAPPDATA%`` on Windows, ``~/Library/Application Support`` on macOS,
        ``$XDG_DATA_HOME`` or ``~/.local/share`` elsewhere.
    """
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or os.environ.get("APPDATA")
        return Path(base) if base else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    xdg = os.environ.get("XDG_DATA_HOME")
    return Path(xdg) if xdg else Path.home() / ".local" / "share"


def deps_root() -> Path:
    """Parent of the per-interpreter folders (``RS2SAM_DEPS_DIR`` or the user data folder)."""
    override = os.environ.get(ENV_VAR)
    return Path(override) if override else user_data_dir() / "rs2sam_qgis"


def deps_dir() -> Path:
    """The private package folder for this interpreter (``<root>/cpython-311``)."""
    return deps_root() / (sys.implementation.cache_tag or "python")


def pending_dir(folder: Path) -> Path:
    """Where a finished install waits when ``folder`` could not be replaced while QGIS ran."""
    return folder.with_name(folder.name + PENDING_SUFFIX)


def staging_dir(folder: Path) -> Path:
    """Where an install in progress is written (never ``folder`` itself)."""
    return folder.with_name(folder.name + STAGING_SUFFIX)


def temp_dir(folder: Path) -> Path:
    """The temporary folder pip uses during an install (``TMPDIR``): its growth is the progress."""
    return folder.with_name(folder.name + TEMP_SUFFIX)


def promote_pending(folder: Path) -> bool:
    """Replace ``folder`` by its ``.pending`` install, if there is one. Returns True if done."""
    pending = pending_dir(folder)
    if not pending.is_dir():
        return False
    try:
        if folder.exists():
            shutil.rmtree(folder)
        pending.rename(folder)
    except OSError:
        return False  # still in use (Windows): the next start tries again
    return True


def activate(folder: Path | None = None) -> Path | None:
    """Put the private folder first on ``sys.path`` (idempotent).

    Args:
        folder: The folder; default :func:`deps_dir`.

    Returns:
        The folder when it exists and is on ``sys.path``, else None.
    """
    folder = folder or deps_dir()
    removed = folder.with_name(folder.name + REMOVED_SUFFIX)  # a removal QGIS had locked
    if removed.exists():
        shutil.rmtree(removed, ignore_errors=True)
    promote_pending(folder)
    if not folder.is_dir():
        return None
    path = str(folder)
    if path in sys.path:
        return folder
    before = list(sys.path)
    site.addsitedir(path)  # appends the folder and what its .pth files name
    added = [p for p in sys.path if p not in before]
    sys.path[:] = [*added, *before]
    import importlib

    importlib.invalidate_caches()
    return folder
