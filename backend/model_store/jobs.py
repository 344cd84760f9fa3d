"""A prepared get or import (:class:`GetJob`) and what a finished one installed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .progress import format_bytes
from .sources import Plan, Source

__all__ = ["GetJob", "Installed"]


@dataclass
class GetJob:
    """A prepared get or import: what will be written, and whether it fits.

    Attributes:
        name: The installed model's name (``"rrsisd"``).
        plan: The source's plan (files, sizes, hashes, licence).
        source: The source that made it.
        out: The checkpoint that will be written.
        fp16: Store float16.
        gsd_m: Working resolution stored with the model.
        download_bytes: Bytes still to download.
        import_bytes: Bytes of the checkpoint (estimate from the weight files).
        free: ``{folder: free bytes}`` of the folders written to.
        problem: Why it cannot run (disk space), or None.
    """

    name: str
    plan: Plan
    source: Source
    out: Path
    fp16: bool
    gsd_m: float | None
    download_bytes: int
    import_bytes: int
    free: dict[str, int] = field(default_factory=dict)
    problem: str | None = None

    @property
    def licence_text(self) -> str:
        """The text to show and accept (empty: nothing to accept)."""
        return self.plan.licence_text

    def describe(self) -> str:
        """Sizes and free space in one line."""
        free = ", ".join(f"{format_bytes(b)} free in {d}" for d, b in self.free.items())
        return (
            f"{self.plan.label}: {len(self.plan.files)} files, {format_bytes(self.plan.nbytes)} "
            f"({format_bytes(self.download_bytes)} still to download) + "
            f"{format_bytes(self.import_bytes)} for the imported model; {free}"
        )


@dataclass(frozen=True)
class Installed:
    """What :meth:`ModelStore.run` installed.

    Attributes:
        name: The model's name.
        checkpoint: The imported file (what the dock and ``--checkpoint`` take).
        summary: The import's one-line summary.
        kept_download: The raw download folder, when kept.
    """

    name: str
    checkpoint: Path
    summary: str
    kept_download: Path | None
