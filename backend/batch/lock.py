"""One batch job per output folder: an advisory lock held for the whole run.

The lock is an OS file lock (``fcntl.flock``; ``msvcrt.locking`` on Windows) on
``<out>/.rs2sam_batch.lock``. The kernel drops it when its holder exits, however it exits
(SIGKILL included), so the lock of a dead job is free: the next run takes it over without
guessing from process ids. Who holds it (pid, host, start time) is written into the file so
that a refused run can name the job it met. The file is removed when the job ends; a run that
opened it just before the removal notices the swap (inode check) and tries again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..errors import OutputError

__all__ = ["LOCK_NAME", "FolderLock"]

LOCK_NAME = ".rs2sam_batch.lock"
"""File name of the lock inside the job's output folder."""

logger = logging.getLogger(__name__)


def _try_lock(f: IO[bytes]) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8")[:4096] or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class FolderLock:
    """The lock of a batch job's output folder (a context manager).

    Args:
        folder: The job's output folder (must exist).
    """

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._file: IO[bytes] | None = None
        self.previous: dict[str, Any] = {}

    def acquire(self) -> FolderLock:
        """Take the lock, or refuse.

        Returns:
            self; ``previous`` holds the record of a dead job whose lock was taken over.

        Raises:
            OutputError: Another running job holds the folder (the message names it).
        """
        for _ in range(20):
            f = open(self.path, "a+b")  # held open for the whole job
            if not _try_lock(f):
                f.close()
                raise self._busy()
            try:
                same = os.fstat(f.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # removed by its last holder between our open and lock: retry
                f.close()
                time.sleep(0.01)
                continue
            self.previous = _holder(self.path)
            if self.previous:
                logger.warning(
                    "took over the lock of an earlier batch job in %s that is no longer "
                    "running (pid %s on %s, started %s)",
                    self.path.parent,
                    self.previous.get("pid"),
                    self.previous.get("host"),
                    self.previous.get("started"),
                )
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            f.seek(0)
            f.truncate()
            f.write(json.dumps(record).encode())
            f.flush()
            self._file = f
            return self
        raise OutputError(f"cannot lock the output folder {str(self.path.parent)!r}; try again")

    def _busy(self) -> OutputError:
        holder = _holder(self.path)
        who = (
            f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
            if holder
            else "a process that is just starting"
        )
        return OutputError(
            f"the output folder {str(self.path.parent)!r} is in use by another batch job "
            f"({who}); wait for it to finish, or choose another --out"
        )

    def release(self) -> None:
        """Remove the lock file and drop the lock (the file goes first: see the module)."""
        if self._file is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
