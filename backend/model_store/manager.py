"""List, get, import and remove models; the steps every front end (CLI, QGIS task) shares.

A get is two calls, so a front end can show the size, the free space and the licence before
anything is written::

    store = ModelStore()                       # RS2SAM_MODELS_DIR or the default folder
    job = store.prepare_get("rrsisd")          # lists the files (network), writes nothing
    job.problem                                # None, or why it cannot run (disk space)
    job.licence_text, store.licence_accepted(job)
    store.accept_licence(job)
    installed = store.run(job, keep_download=False, on_progress=..., is_cancelled=...)

:meth:`ModelStore.run` downloads (resuming), verifies every file against the published size and
hash, streams the import into ``<models>/rs2sam2-<name>.safetensors`` (temporary name, renamed at
the end) and records it. A failure or a cancel leaves no checkpoint; a damaged file is deleted
so that the next get downloads it anew; an interrupted download is kept and resumed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError
from .catalogue import PUBLISHED, SCALE, ModelRow, Records, default_models_dir
from .errors import DownloadError, LicenceNotAccepted
from .jobs import GetJob, Installed
from .progress import Progress, ProgressState, format_bytes
from .sources import SOURCES, Plan, Source, verify_file

__all__ = ["GetJob", "Installed", "ModelStore", "make_source"]

_DISK_MARGIN = 64 * 1024**2
_BUNDLED_LICENCE = "non-commercial research use only (NWPU VHR-10 images); see the model card"
_UNSTATED = "see the model page"


class ModelStore:
    """A models folder.

    Args:
        root: The folder (created on the first get); default :func:`default_models_dir`.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_models_dir()
        self.downloads = self.root / "downloads"

    # ------------------------------------------------------------------ list
    def rows(self) -> list[ModelRow]:
        """The bundled default, every published model, and the folder's other checkpoints."""
        records = Records(self.root)
        rows = [_bundled_row()]
        recorded_paths = set()
        for pub in PUBLISHED.values():
            rec = records.installed.get(pub.name)
            path = Path(rec["checkpoint"]) if rec else None
            ok = path is not None and path.is_file()
            if ok:
                recorded_paths.add(str(path))
            rows.append(
                ModelRow(
                    name=pub.name,
                    kind="published",
                    title=pub.title,
                    trained_on=f"{pub.trained_on}; {SCALE}",
                    installed=ok,
                    path=str(path) if ok else None,
                    size_bytes=path.stat().st_size if ok and path else 0,
                    licence=(rec or {}).get("licence_id") or _UNSTATED,
                    where=str(path) if ok else f"{pub.repo_id}/{pub.folder} (Hugging Face)",
                )
            )
        if self.root.is_dir():
            for file in sorted(self.root.glob("*.safetensors")):
                if str(file) in recorded_paths:
                    continue
                rows.append(
                    ModelRow(
                        file.stem,
                        "file",
                        file.name,
                        "your own checkpoint",
                        True,
                        str(file),
                        file.stat().st_size,
                        "yours",
                        str(file),
                    )
                )
        return rows

    # ------------------------------------------------------------------ prepare
    def prepare_get(self, name: str, *, fp16: bool = False) -> GetJob:
        """Plan getting a published model (lists its files; writes nothing).

        Raises:
            InputError: Unknown name.
            DownloadError: The source cannot be reached or has no such folder.
        """
        pub = PUBLISHED.get(name)
        if pub is None:
            raise InputError(
                f"unknown model {name!r}; published models: {', '.join(PUBLISHED)} "
                "(see 'python -m backend models list')"
            )
        source = make_source(
            pub.source, repo_id=pub.repo_id, folder=pub.folder, downloads=self.downloads
        )
        return self._job(pub.name, source, fp16=fp16, gsd_m=pub.gsd_m)

    def prepare_import(
        self,
        folder: str | Path,
        *,
        name: str | None = None,
        fp16: bool = False,
        gsd_m: float | None = None,
    ) -> GetJob:
        """Plan importing a release folder the user already has.

        Raises:
            DownloadError: Not a folder, or empty.
            InputError: A name that is not a plain file stem.
        """
        source = make_source("folder", path=folder)
        stem = name or Path(folder).expanduser().resolve().name
        if not stem or any(c in stem for c in "/\\:") or stem.startswith("."):
            raise InputError(f"model name {stem!r} must be a plain name like 'rrsisd'; pass --name")
        pub = PUBLISHED.get(stem)
        gsd = gsd_m if gsd_m is not None else (pub.gsd_m if pub is not None else None)
        return self._job(stem, source, fp16=fp16, gsd_m=gsd)

    def _job(self, name: str, source: Source, *, fp16: bool, gsd_m: float | None) -> GetJob:
        plan = source.plan()
        weights = sum(f.size for f in plan.files if f.name.endswith((".safetensors", ".bin")))
        out = self.root / f"rs2sam2-{name}{'-fp16' if fp16 else ''}.safetensors"
        job = GetJob(
            name=name,
            plan=plan,
            source=source,
            out=out,
            fp16=fp16,
            gsd_m=gsd_m,
            download_bytes=source.missing_bytes(plan),
            import_bytes=weights // (2 if fp16 else 1),
        )
        self._check_disk(job)
        if out.exists():
            job.problem = (
                f"{name} is already installed as {out}; run 'models remove {name}' first to "
                "get it again"
            )
        return job

    def _check_disk(self, job: GetJob) -> None:
        """Set ``job.problem`` when the download and the import together do not fit."""
        needs: dict[tuple[int, str], int] = {}
        for folder, nbytes in ((self.downloads, job.download_bytes), (self.root, job.import_bytes)):
            probe = _existing_parent(folder)
            key = (os.stat(probe).st_dev, str(probe))
            same = next((k for k in needs if k[0] == key[0]), key)
            needs[same] = needs.get(same, 0) + nbytes
        for (_, probe), nbytes in needs.items():
            free = _free_bytes(probe)
            job.free[probe] = free
            if free < nbytes + _DISK_MARGIN:
                job.problem = (
                    f"not enough disk space: {format_bytes(nbytes)} needed in {probe} "
                    f"({format_bytes(job.download_bytes)} download + "
                    f"{format_bytes(job.import_bytes)} imported model) but "
                    f"{format_bytes(free)} is free; free some space or set RS2SAM_MODELS_DIR "
                    "to a folder on a larger disk"
                )

    # ------------------------------------------------------------------ licence
    def licence_accepted(self, job: GetJob) -> bool:
        """True when there is nothing to accept or this exact text was accepted before."""
        if not job.licence_text:
            return True
        key = job.plan.label.split(" @ ")[0]
        return Records(self.root).licences.get(key) == job.plan.licence_sha256

    def accept_licence(self, job: GetJob) -> None:
        """Record that the user accepted ``job``'s licence text (asked once per text)."""
        records = Records(self.root)
        records.licences[job.plan.label.split(" @ ")[0]] = job.plan.licence_sha256
        records.save()

    # ------------------------------------------------------------------ run
    def run(
        self,
        job: GetJob,
        *,
        keep_download: bool = False,
        on_progress: Callable[[ProgressState], None] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
        run_import: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> Installed:
        """Download (resuming), verify, import and record.

        Args:
            job: From :meth:`prepare_get` / :meth:`prepare_import`.
            keep_download: Keep the raw download after a successful import.
            on_progress: Receives the progress of each stage (download, verify, import).
            is_cancelled: Polled between chunks and tensors.
            run_import: Runs the import (the torch part) when given, e.g. on the QGIS plugin's
                backend thread; None runs it here.

        Raises:
            OutputError: Not enough disk space, or the model is installed already.
            LicenceNotAccepted: The licence was not accepted.
            DownloadError: Transfer failed or a file is damaged (nothing imported).
            CheckpointError: The folder is not a usable release (nothing imported).
            Cancelled: ``is_cancelled`` returned True (nothing imported).
        """
        from ..model.official.importer import import_official

        if job.problem is not None:
            raise OutputError(job.problem)
        if not self.licence_accepted(job):
            raise LicenceNotAccepted(
                f"the licence of {job.plan.label} was not accepted; nothing was downloaded"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        folder = job.source.fetch(job.plan, on_progress=on_progress, is_cancelled=is_cancelled)
        self._verify(job, folder, on_progress)
        progress = Progress(on_progress, "import", job.import_bytes)

        def on_bytes(done: int, total: int) -> None:
            progress.total = total
            progress.set(done)

        def do_import() -> Any:
            return import_official(
                folder,
                job.out,
                fp16=job.fp16,
                gsd_m=job.gsd_m,
                progress=on_bytes,
                is_cancelled=is_cancelled,
            )

        result = run_import(do_import) if run_import is not None else do_import()
        records = Records(self.root)
        records.installed[job.name] = {
            "checkpoint": str(result.out),
            "source": job.plan.source,
            "label": job.plan.label,
            "origin": job.plan.origin,
            "licence_id": job.plan.licence_id,
            "licence_sha256": job.plan.licence_sha256,
            "fp16": job.fp16,
            "weights_sha256": result.weights_sha256,
            "files": {f.name: f.sha256 or f.git_oid or f.size for f in job.plan.files},
        }
        records.save()
        kept = folder if job.plan.source != "folder" else None
        if not keep_download and kept is not None:
            job.source.discard(job.plan)
            kept = None
        return Installed(job.name, result.out, result.summary(), kept)

    def _verify(
        self, job: GetJob, folder: Path, on_progress: Callable[[ProgressState], None] | None
    ) -> None:
        progress = Progress(on_progress, "verify", job.plan.nbytes)
        done = 0
        for spec in job.plan.files:
            path = folder / spec.name
            if not path.is_file():
                raise DownloadError(f"{spec.name} is missing from {folder}; nothing was imported")
            try:
                verify_file(path, spec, progress, done)
            except DownloadError as err:
                if job.plan.source != "folder":
                    path.unlink()  # damaged: the next get downloads it anew
                raise DownloadError(
                    f"{err}; it was deleted and nothing was imported (Get again to download it "
                    "anew)"
                    if job.plan.source != "folder"
                    else f"{err}; nothing was imported"
                ) from None
            done += spec.size

    # ------------------------------------------------------------------ remove
    def remove(self, name: str) -> int:
        """Delete an installed model (its checkpoint, record and any kept download).

        Returns:
            Bytes freed.

        Raises:
            InputError: The bundled model, or nothing of that name in the models folder.
        """
        if name == "default":
            raise InputError("the bundled default weights are part of the plugin; not removed")
        records = Records(self.root)
        freed = 0
        rec = records.installed.pop(name, None)
        path = Path(rec["checkpoint"]) if rec else self.root / f"{name}.safetensors"
        if rec is None and not path.is_file():
            known = [r.name for r in self.rows() if r.kind != "bundled" and r.installed]
            raise InputError(
                f"no installed model {name!r} in {self.root}; installed: "
                f"{', '.join(known) or 'none'}"
            )
        if path.is_file() and path.parent.resolve() == self.root.resolve():
            freed += path.stat().st_size
            path.unlink()
        pub = PUBLISHED.get(name)
        if pub is not None:
            freed += make_source(
                pub.source, repo_id=pub.repo_id, folder=pub.folder, downloads=self.downloads
            ).discard(Plan(pub.source, name, []))
        if rec is not None:
            records.save()
        return freed


def make_source(name: str, **options: object) -> Source:
    """An instance of the registered source ``name`` (the built-in ones register on import).

    Raises:
        DownloadError: No such source.
    """
    from . import folder, hub  # noqa: F401

    if name not in SOURCES:
        raise DownloadError(f"unknown model source {name!r}; known: {', '.join(sorted(SOURCES))}")
    return SOURCES[name](**options)  # type: ignore[arg-type]


def _bundled_row() -> ModelRow:
    path = Path(__file__).resolve().parents[1] / "weights" / "default.safetensors"
    ok = path.is_file()
    return ModelRow(
        "default",
        "bundled",
        "Bundled default (nano, experimental)",
        "NWPU VHR-10 and Dubai referring sets generated by this project (trained from scratch "
        "on a CPU); 14 M parameters",
        ok,
        str(path) if ok else None,
        path.stat().st_size if ok else 0,
        _BUNDLED_LICENCE,
        "inside the plugin",
    )


def _existing_parent(folder: Path) -> Path:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _free_bytes(folder: Path) -> int:
    """Free bytes of ``folder``'s file system (``RS2SAM_FREE_BYTES`` overrides, for tests)."""
    forced = os.environ.get("RS2SAM_FREE_BYTES")
    if forced:
        return int(forced)
    return shutil.disk_usage(folder).free
