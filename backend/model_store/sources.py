"""Download sources: a small registry, the plan of a download, and file verification.

A source turns "what to get" into a :class:`Plan` (the files with their sizes and published
hashes, the licence) without writing anything, then :meth:`Source.fetch` puts the files into a
local release folder and returns it. Sources register themselves with :func:`register_source`;
the manager (:func:`backend.model_store.manager.make_source`) picks one by the name in its
catalogue entry (``"hub"``) or for the command (``"folder"``), never by an ``if`` chain.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import DownloadError
from .progress import Progress, ProgressState

__all__ = [
    "SOURCES",
    "FileSpec",
    "Plan",
    "Source",
    "register_source",
    "verify_file",
]

_CHUNK = 4 * 1024**2


@dataclass(frozen=True)
class FileSpec:
    """One file of a release folder.

    Attributes:
        name: File name inside the release folder (``"model.safetensors"``).
        size: Bytes.
        sha256: The SHA-256 the source publishes (LFS files on the hub), or None.
        git_oid: The git blob id the source publishes (small files on the hub), or None.
        remote: Where the source finds it (a path in the repository, or a local path).
    """

    name: str
    size: int
    sha256: str | None = None
    git_oid: str | None = None
    remote: str = ""


@dataclass
class Plan:
    """What a fetch will bring, known before any byte of a weight file is transferred.

    Attributes:
        source: Registered source name.
        label: Where it comes from, for messages (``"ReeF2025/RS2-SAM2/rrsisd @ 1a2b3c4d"``).
        files: The files of the release folder.
        licence_id: The licence's short id (``"apache-2.0"``, ``"other"``), or ``""``.
        licence_text: The text the user accepts (the model page's licence section or file).
        origin: Facts for the installed model's record (repository, revision, endpoint, ...).
    """

    source: str
    label: str
    files: list[FileSpec]
    licence_id: str = ""
    licence_text: str = ""
    origin: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of all files."""
        return sum(f.size for f in self.files)

    @property
    def licence_sha256(self) -> str:
        """Hash of the licence text (what an acceptance is recorded against)."""
        return hashlib.sha256(self.licence_text.encode()).hexdigest()


class Source:
    """A place release folders come from. Subclasses register with :func:`register_source`."""

    name: ClassVar[str] = ""

    def plan(self) -> Plan:
        """List the files, sizes, hashes and licence (writes nothing).

        Raises:
            DownloadError: The source cannot be reached or has no such release.
        """
        raise NotImplementedError

    def missing_bytes(self, plan: Plan) -> int:
        """Bytes still to transfer into the download folder (what a disk check needs)."""
        return 0

    def fetch(
        self,
        plan: Plan,
        *,
        on_progress: Callable[[ProgressState], None] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> Path:
        """Bring the plan's files into a local release folder (resumable) and return it.

        Raises:
            DownloadError: Transfer failed; what was transferred is kept for a resume.
            Cancelled: ``is_cancelled`` returned True (kept for a resume too).
        """
        raise NotImplementedError

    def discard(self, plan: Plan) -> int:
        """Delete what :meth:`fetch` downloaded (not the user's own files); bytes freed."""
        return 0


SOURCES: dict[str, type[Source]] = {}
"""Registered sources by name."""


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator: make ``cls`` available by its ``name`` (see ``manager.make_source``)."""
    if not cls.name or cls.name in SOURCES:
        raise ValueError(f"source name {cls.name!r} is empty or registered twice")
    SOURCES[cls.name] = cls
    return cls


def verify_file(
    path: Path, spec: FileSpec, progress: Progress | None = None, done_before: int = 0
) -> None:
    """Check a file's size and the hash its source publishes.

    Args:
        path: The local file.
        spec: What it must be.
        progress: Advanced by the bytes hashed (absolute: ``done_before`` + bytes of this file).
        done_before: Bytes of earlier files in the same progress.

    Raises:
        DownloadError: Size or hash differs (the message names both values).
    """
    size = path.stat().st_size
    if size != spec.size:
        raise DownloadError(
            f"{spec.name} has {size} bytes but the source lists {spec.size}; the file is "
            "incomplete or damaged"
        )
    if spec.sha256 is None and spec.git_oid is None:
        return
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            (sha256 if spec.sha256 else git).update(chunk)
            done += len(chunk)
            if progress is not None:
                progress.set(done_before + done, spec.name)
    if spec.sha256 is not None and sha256.hexdigest() != spec.sha256.lower():
        raise DownloadError(
            f"{spec.name}: its SHA-256 is {sha256.hexdigest()[:16]}… but the source publishes "
            f"{spec.sha256[:16]}…; the file is damaged"
        )
    if spec.sha256 is None and spec.git_oid is not None and git.hexdigest() != spec.git_oid:
        raise DownloadError(
            f"{spec.name}: its git blob id is {git.hexdigest()[:16]}… but the source publishes "
            f"{spec.git_oid[:16]}…; the file is damaged"
        )


def safe_name(name: str) -> str:
    """``name`` if it is a plain relative path inside a folder (no ``..``, not absolute).

    Raises:
        DownloadError: It would leave the folder.
    """
    parts = Path(name).parts
    if (
        not parts
        or Path(name).is_absolute()
        or any(p in ("..", "") for p in parts)
        or (os.sep != "/" and "\\" in name)
    ):
        raise DownloadError(f"the source names a file {name!r} outside its folder; refused")
    return name
