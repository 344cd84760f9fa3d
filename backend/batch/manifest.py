"""The job's manifest: settings, rasters and chunks with their state, in one SQLite file.

SQLite because it is in the standard library, every update is a transaction (a job killed at
any instant leaves a consistent file), and a 10 TB mosaic's ~10^5 chunks are a few MB. Only the
driver writes it; workers never touch it. A chunk is ``done`` only after its result file was
renamed into place (:mod:`backend.batch.chunkfile`), so "done in the manifest" always means
"its result is on disk".
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError

__all__ = ["MANIFEST_NAME", "ChunkRow", "Manifest"]

MANIFEST_NAME = "rs2sam_batch.sqlite"
"""File name of the manifest inside the job's output folder."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS job (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rasters (
    idx INTEGER PRIMARY KEY, path TEXT NOT NULL, planned INTEGER NOT NULL DEFAULT 0,
    error TEXT, crs_wkt TEXT, identity TEXT
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, raster INTEGER NOT NULL, query INTEGER NOT NULL,
    row_off INTEGER NOT NULL, col_off INTEGER NOT NULL, height INTEGER NOT NULL,
    width INTEGER NOT NULL, span TEXT, status TEXT NOT NULL DEFAULT 'pending',
    error TEXT, seconds REAL, model_s REAL, polygons INTEGER, attempts INTEGER DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_status ON chunks(status);
"""


@dataclass(frozen=True)
class ChunkRow:
    """One chunk as stored: a window of raster ``raster`` for query ``query``."""

    id: int
    raster: int
    query: int
    window: tuple[int, int, int, int]
    span: tuple[tuple[int, int], tuple[int, int]] | None
    status: str
    error: str | None


class Manifest:
    """Open (or create) the manifest at ``path``.

    Raises:
        OutputError: The file cannot be created or is not a manifest.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(str(path), timeout=30.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(rasters)")}
            if "identity" not in columns:  # a manifest of an earlier version
                with self.db:
                    self.db.execute("ALTER TABLE rasters ADD COLUMN identity TEXT")
        except sqlite3.DatabaseError as exc:
            raise OutputError(
                f"{str(path)!r} is not a usable batch manifest ({exc}); delete it or choose "
                "another --out"
            ) from exc

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    # job settings -------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        """A job value (JSON-decoded), or None."""
        row = self.db.execute("SELECT value FROM job WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        """Store a job value (JSON)."""
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO job(key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def check_settings(self, settings: dict[str, Any]) -> bool:
        """Store ``settings`` for a new job; for an existing one, require they are the same.

        Returns:
            True when the manifest already held this job (a resume).

        Raises:
            InputError: The folder holds a job with other settings.
        """
        stored = self.get("settings")
        if stored is None:
            self.put("settings", settings)
            return False
        if stored != settings:
            changed = sorted(
                k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k)
            )
            raise InputError(
                f"the output folder holds a batch job with other settings ({', '.join(changed)} "
                f"differ); re-run it unchanged to resume, pass --restart to start it again, or "
                "choose another --out"
            )
        return True

    # rasters ------------------------------------------------------------------------------
    def add_rasters(self, paths: Sequence[str]) -> None:
        """Record the job's rasters (index = position) if not yet recorded."""
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO rasters(idx, path) VALUES (?, ?)", enumerate(paths)
            )

    def identities(self) -> dict[int, Any]:
        """``{idx: identity}`` as stored (:mod:`.identity`; None when not yet stored)."""
        rows = self.db.execute("SELECT idx, identity FROM rasters")
        return {idx: None if ident is None else json.loads(ident) for idx, ident in rows}

    def set_identity(self, idx: int, identity: Any) -> None:
        """Store raster ``idx``'s content identity."""
        with self.db:
            self.db.execute(
                "UPDATE rasters SET identity=? WHERE idx=?", (json.dumps(identity), idx)
            )

    def reset_raster(self, idx: int) -> list[int]:
        """Forget raster ``idx``'s plan and chunks (it changed); return the chunk ids dropped."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE raster=?", (idx,))]
        with self.db:
            self.db.execute("DELETE FROM chunks WHERE raster=?", (idx,))
            self.db.execute(
                "UPDATE rasters SET planned=0, error=NULL, crs_wkt=NULL WHERE idx=?", (idx,)
            )
        return ids

    def rasters(self) -> list[tuple[int, str, bool, str | None, str | None]]:
        """``(idx, path, planned, error, crs_wkt)`` of every raster."""
        return list(
            self.db.execute("SELECT idx, path, planned, error, crs_wkt FROM rasters ORDER BY idx")
        )

    def set_raster_error(self, idx: int, error: str) -> None:
        """Record why raster ``idx`` could not be planned (retried on the next run)."""
        with self.db:
            self.db.execute("UPDATE rasters SET error=? WHERE idx=?", (error, idx))

    def add_plan(
        self,
        idx: int,
        crs_wkt: str,
        chunks: Iterable[tuple[int, tuple[int, int, int, int], Any]],
    ) -> None:
        """Store raster ``idx``'s chunks ``(query, window, span)`` and mark it planned."""
        rows = [
            (idx, query, *window, None if span is None else json.dumps(span))
            for query, window, span in chunks
        ]
        with self.db:
            self.db.executemany(
                "INSERT INTO chunks(raster, query, row_off, col_off, height, width, span) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.db.execute(
                "UPDATE rasters SET planned=1, error=NULL, crs_wkt=? WHERE idx=?", (crs_wkt, idx)
            )

    # chunks -------------------------------------------------------------------------------
    def chunks(self, status: str | None = None) -> list[ChunkRow]:
        """Chunks (all, or those with ``status``), in id order."""
        sql = "SELECT id, raster, query, row_off, col_off, height, width, span, status, error "
        sql += "FROM chunks" + (" WHERE status=?" if status else "") + " ORDER BY id"
        out = []
        for row in self.db.execute(sql, (status,) if status else ()):
            span = None if row[7] is None else tuple(tuple(s) for s in json.loads(row[7]))
            out.append(ChunkRow(row[0], row[1], row[2], tuple(row[3:7]), span, row[8], row[9]))  # type: ignore[arg-type]
        return out

    def mark(
        self,
        chunk_id: int,
        *,
        ok: bool,
        error: str | None = None,
        seconds: float = 0.0,
        model_s: float = 0.0,
        polygons: int = 0,
    ) -> None:
        """Record a chunk's outcome (one transaction)."""
        with self.db:
            self.db.execute(
                "UPDATE chunks SET status=?, error=?, seconds=?, model_s=?, polygons=?, "
                "attempts=attempts+1 WHERE id=?",
                ("done" if ok else "failed", error, seconds, model_s, polygons, chunk_id),
            )

    def counts(self) -> dict[str, int]:
        """Number of chunks per status."""
        return dict(self.db.execute("SELECT status, COUNT(*) FROM chunks GROUP BY status"))
