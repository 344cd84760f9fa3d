"""What a user can run: the bundled default, the published models, their own checkpoint files.

The published models are the two folders of ``ReeF2025/RS2-SAM2`` (the paper's authors'
release, architecture ``rs2sam2-official``, BEiT-3-L + SAM 2.0 Hiera-L, about 935 M
parameters). The models folder (``RS2SAM_MODELS_DIR``, default
``$XDG_DATA_HOME/rs2sam/models``) holds imported checkpoints, the raw downloads and
``models.json``, the record of what was installed from where and which licences were accepted.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PUBLISHED", "ModelRow", "Published", "Records", "default_models_dir"]

RECORDS_FILE = "models.json"


@dataclass(frozen=True)
class Published:
    """A published release folder.

    Attributes:
        name: Short name for the CLI and the dialog (``"rrsisd"``).
        repo_id: Hugging Face repository.
        folder: Folder in the repository.
        trained_on: What the weights were trained on, in one sentence.
        gsd_m: Working resolution stored with the imported model (m/px).
        source: Registered source name that fetches it.
    """

    name: str
    repo_id: str
    folder: str
    trained_on: str
    gsd_m: float
    source: str = "hub"

    @property
    def title(self) -> str:
        """``"RS2-SAM 2 (RRSIS-D)"``-style title."""
        return f"RS2-SAM 2, published weights ({self.folder}/)"


_SCALE = "RS2-SAM 2 official-large: BEiT-3-L + SAM 2.0 Hiera-L, about 935 M parameters"
PUBLISHED: dict[str, Published] = {
    "rrsisd": Published(
        "rrsisd",
        "ReeF2025/RS2-SAM2",
        "rrsisd",
        "RRSIS-D: 800 px aerial/satellite scenes at 0.5-30 m, 20 object classes (airplanes, "
        "ships, storage tanks, bridges, stadiums, vehicles, ...)",
        0.5,
    ),
    "refseg": Published(
        "refseg",
        "ReeF2025/RS2-SAM2",
        "refseg",
        "RefSegRS: 512 px aerial tiles of Munich at about 13 cm (roads, cars, buildings, trees)",
        0.13,
    ),
}
SCALE = _SCALE


def default_models_dir() -> Path:
    """``RS2SAM_MODELS_DIR``, else ``$XDG_DATA_HOME/rs2sam/models`` (``~/.local/share``)."""
    if os.environ.get("RS2SAM_MODELS_DIR"):
        return Path(os.environ["RS2SAM_MODELS_DIR"]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(data) / "rs2sam" / "models"


@dataclass(frozen=True)
class ModelRow:
    """One line of ``models list`` and of the dialog's table.

    Attributes:
        name: What ``get`` / ``remove`` take (``"default"``, ``"rrsisd"``, a file stem).
        kind: ``"bundled"``, ``"published"`` or ``"file"``.
        title: Human title.
        trained_on: What the weights saw.
        installed: Whether it can run now.
        path: The checkpoint file when installed.
        size_bytes: Bytes on disk (installed) or to download (published, when known).
        licence: Licence id or a short statement.
        where: Where it lives or comes from.
    """

    name: str
    kind: str
    title: str
    trained_on: str
    installed: bool
    path: str | None
    size_bytes: int
    licence: str
    where: str


class Records:
    """``models.json`` of a models folder: installed models and accepted licences."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / RECORDS_FILE
        self.data: dict[str, Any] = {"installed": {}, "licences": {}}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = None
        if isinstance(loaded, dict):
            for key in self.data:
                if isinstance(loaded.get(key), dict):
                    self.data[key] = loaded[key]

    @property
    def installed(self) -> dict[str, dict[str, Any]]:
        """``{name: record}``."""
        return self.data["installed"]

    @property
    def licences(self) -> dict[str, str]:
        """``{source label without revision: accepted licence sha256}``."""
        return self.data["licences"]

    def save(self) -> None:
        """Write atomically (temporary file + rename), through the shared output rule."""
        from ..outputs import check_output_file

        self.root.mkdir(parents=True, exist_ok=True)
        check_output_file(self.path, suffixes=(".json",), overwrite=True, option="models.json")
        fd, tmp = tempfile.mkstemp(prefix=".models.", suffix=".tmp", dir=self.root)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
