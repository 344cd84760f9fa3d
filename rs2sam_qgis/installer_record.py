"""What an install left behind: a small record in the private folder, its size, removing it.

A finished install writes ``rs2sam_install.json`` into the private package folder (what was
asked for, from which index, with which interpreter, when). The installer dialog reads it
when it is opened again to say what is installed, where and how big it is, and offers to
repair (install again) or remove it. Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .private_site import REMOVED_SUFFIX, pending_dir

RECORD_NAME = "rs2sam_install.json"


@dataclass
class InstallRecord:
    """One finished install.

    Attributes:
        folder: Where the packages are (the private folder, or its ``.pending`` twin until
            QGIS restarts).
        variant: The torch build (``cpu``, ``cuda``, ``pypi``; "" when not known).
        requirements: The requirement set as asked for.
        index_url: The main index pip used.
        index_source: Where that setting came from ("pip's default", "PIP_INDEX_URL", ...).
        extra_index_urls: Further indexes.
        python: The interpreter that ran pip.
        installed_at: ISO time (UTC).
        size_bytes: Bytes on disk (measured when read, else when written).
    """

    folder: str = ""
    variant: str = ""
    requirements: list[str] = field(default_factory=list)
    index_url: str = ""
    index_source: str = ""
    extra_index_urls: list[str] = field(default_factory=list)
    python: str = ""
    installed_at: str = ""
    size_bytes: int = 0


def folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder`` (0 when it does not exist; links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def write_record(folder: Path, record: InstallRecord) -> InstallRecord:
    """Store ``record`` in ``folder`` with the folder's measured size; returns it."""
    record.folder = str(folder)
    record.installed_at = record.installed_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record.size_bytes = folder_size(folder)
    (folder / RECORD_NAME).write_text(json.dumps(asdict(record), indent=1), encoding="utf-8")
    return record


def read_record(target: Path) -> InstallRecord | None:
    """The install in ``target`` (or waiting in its ``.pending`` twin), size measured now.

    Returns:
        None when neither folder holds a record (nothing installed by the dialog).
    """
    for folder in (pending_dir(target), target):
        file = folder / RECORD_NAME
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        known = {k: v for k, v in data.items() if k in InstallRecord.__dataclass_fields__}
        record = InstallRecord(**known)
        record.folder = str(folder)
        record.size_bytes = folder_size(folder)
        return record
    return None


def remove_install(target: Path) -> list[Path]:
    """Delete the private folder and its ``.pending`` twin.

    A folder that cannot be deleted now (Windows keeps loaded ``.pyd`` files open) is renamed
    to ``<name>.remove`` and deleted at the next start (:func:`.private_site.activate`).

    Returns:
        The folders that are still on disk (renamed, waiting for the next start).
    """
    left: list[Path] = []
    for folder in (pending_dir(target), target):
        if not folder.exists():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            doomed = folder.with_name(folder.name + REMOVED_SUFFIX)
            try:
                folder.rename(doomed)
                left.append(doomed)
            except OSError:
                left.append(folder)
    return left
