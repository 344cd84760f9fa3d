"""A release folder the user already has (offline machines, mirrors, a copy from a colleague).

Nothing is transferred: the plan lists the folder's files and sizes, the fetch returns the
folder itself, and nothing of it is ever deleted. Files carry no published hash here; the
release checks of ``import-official`` (every tensor accounted for, shapes, safe formats) still
run. A ``LICENSE`` file or a model card in the folder is shown as the licence.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .errors import DownloadError
from .hub import _licence_section
from .progress import Progress, ProgressState
from .sources import FileSpec, Plan, Source, register_source

__all__ = ["FolderSource"]

_SKIP_SUFFIXES = (".part", ".tmp")


@register_source
class FolderSource(Source):
    """A local release folder.

    Args:
        path: The folder with ``config.json``, the weights and the tokeniser.
    """

    name = "folder"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    def plan(self) -> Plan:
        """The folder's files (sizes only) and its licence text, if it has one."""
        if not self.path.is_dir():
            raise DownloadError(
                f"{self.path} is not a folder; choose the release folder that holds config.json "
                "(rrsisd/ or refseg/ of ReeF2025/RS2-SAM2)"
            )
        files = [
            FileSpec(name=p.relative_to(self.path).as_posix(), size=p.stat().st_size, remote=str(p))
            for p in sorted(self.path.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(_SKIP_SUFFIXES)
        ]
        if not files:
            raise DownloadError(f"{self.path} is empty; choose the downloaded release folder")
        texts = []
        for name in ("LICENSE", "LICENSE.md", "LICENSE.txt", "README.md"):
            if (self.path / name).is_file():
                text = (self.path / name).read_text(encoding="utf-8", errors="replace")
                text = _licence_section(text) if name == "README.md" else text
                if text.strip():
                    texts.append(f"--- {name} ---\n{text.strip()}")
        return Plan(
            source=self.name,
            label=str(self.path),
            files=files,
            licence_id="",
            licence_text="\n\n".join(texts),
            origin={"folder_path": str(self.path.resolve())},
        )

    def fetch(
        self,
        plan: Plan,
        *,
        on_progress: Callable[[ProgressState], None] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> Path:
        """The folder itself (nothing to transfer)."""
        Progress(on_progress, "download", plan.nbytes).set(plan.nbytes)
        return self.path
