"""The Hugging Face Hub source: one folder of a model repository, resumable and verified.

Everything goes through ``huggingface_hub`` (its ``HfApi`` for the file list and the model page,
``get_hf_file_metadata`` / ``http_get`` for the transfer); no HTTP client of our own. Read at
call time, so a change of the environment is honoured without restarting QGIS:

* ``HF_ENDPOINT``: the hub or a mirror (default ``https://huggingface.co``);
* ``HF_TOKEN``, or the token file under ``HF_HOME``, for gated or private repositories
  (``huggingface_hub`` reads them);
* ``HF_HUB_CACHE`` / ``HF_HOME``: a file of the same commit already in the Hugging Face cache
  (from ``hf download`` or another tool) is linked (or copied) from there instead of being
  downloaded again; it is verified like a download;
* ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``: honoured by the HTTP client;
* ``HF_HUB_OFFLINE=1``: refused with a clear message.

Resume: each file is downloaded to ``NAME.part`` in the download folder (next to a small record
of the revision and ETag it belongs to); an interrupted or cancelled download keeps it, and the
next fetch asks the server only for the missing bytes (an HTTP ``Range`` request). The pinned
revision (the commit the plan was made at) makes sure the parts all belong to the same files.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import Cancelled
from .errors import DownloadError
from .progress import Progress, ProgressState
from .sources import FileSpec, Plan, Source, register_source, safe_name

__all__ = ["HubSource", "hub_endpoint"]

DEFAULT_ENDPOINT = "https://huggingface.co"
_RECORD = ".rs2sam-download.json"
_MAX_LICENCE_CHARS = 20_000


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` (read now), without a trailing slash."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_cache() -> Path:
    """``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub`` (read now)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _offline() -> bool:
    return (os.environ.get("HF_HUB_OFFLINE") or "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _translate(err: BaseException, what: str, endpoint: str) -> DownloadError:
    """One readable line for an error of ``huggingface_hub`` or the HTTP client."""
    import httpx2
    from huggingface_hub import errors as hf

    if isinstance(err, hf.OfflineModeIsEnabled):
        return DownloadError(
            "HF_HUB_OFFLINE is set, so nothing can be downloaded; unset it, or download the "
            "folder on another machine and use 'models import DIR'"
        )
    if isinstance(err, hf.GatedRepoError):
        return DownloadError(
            f"{what} is gated on {endpoint}: accept its conditions on the model page and set "
            "HF_TOKEN (or run 'hf auth login')"
        )
    if isinstance(err, hf.RepositoryNotFoundError):
        return DownloadError(
            f"{what} was not found on {endpoint} (or it is private); check the name and "
            "HF_ENDPOINT, and set HF_TOKEN for a private repository"
        )
    if isinstance(err, hf.RevisionNotFoundError | hf.RemoteEntryNotFoundError):
        return DownloadError(f"{what} was not found on {endpoint}; check the name")
    if isinstance(err, hf.HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", "?")
        first = str(err).splitlines()[0][:200]
        return DownloadError(f"{endpoint} answered HTTP {status} for {what} ({first})")
    proxy = _proxy_for(endpoint)
    if isinstance(err, httpx2.TransportError) and (proxy or isinstance(err, httpx2.ProxyError)):
        return DownloadError(
            f"cannot reach {endpoint} through the proxy {proxy or '?'} ({type(err).__name__}: "
            f"{err}); check HTTPS_PROXY, HTTP_PROXY and NO_PROXY, or the proxy itself"
        )
    if isinstance(err, httpx2.TransportError):
        return DownloadError(
            f"cannot reach {endpoint} ({type(err).__name__}: {err}); check the network, "
            "HF_ENDPOINT and the proxy variables"
        )
    return DownloadError(f"downloading {what} failed ({type(err).__name__}: {err})")


def _proxy_for(endpoint: str) -> str:
    """The proxy the environment sets for ``endpoint`` (without credentials), or ``""``."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all") or ""
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return ""
    shown = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return f"{shown.scheme}://{shown.hostname}" + (f":{shown.port}" if shown.port else "")


def _bar_class(progress: Progress, before: int, is_cancelled: Callable[[], bool] | None) -> type:
    """A tqdm stand-in for ``http_get`` that feeds ``progress`` and polls the cancel flag."""

    class _Bar:
        def __init__(self, *args: Any, initial: int = 0, **kwargs: Any) -> None:
            self.n = initial
            progress.set(before + initial)

        def update(self, n: int = 1) -> None:
            self.n += n
            progress.set(before + self.n)
            if is_cancelled is not None and is_cancelled():
                raise Cancelled("download cancelled; what was downloaded is kept for a resume")

        def close(self) -> None:
            """Nothing to close."""

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    return _Bar


@register_source
class HubSource(Source):
    """One folder of a Hugging Face model repository.

    Args:
        repo_id: ``"ReeF2025/RS2-SAM2"``.
        folder: ``"rrsisd"``.
        downloads: Folder for downloads (``<downloads>/<owner>--<name>/<folder>``).
        revision: Branch, tag or commit (default ``main``); pinned to its commit by the plan.
    """

    name = "hub"

    def __init__(
        self, repo_id: str, folder: str, downloads: str | Path, revision: str | None = None
    ) -> None:
        self.repo_id = repo_id
        self.folder = folder.strip("/")
        self.revision = revision
        self.endpoint = hub_endpoint()
        self.dest = Path(downloads) / repo_id.replace("/", "--") / self.folder

    def _api(self) -> Any:
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint)

    def _call(self, what: str, fn: Callable[[], Any], *, transfer: bool = False) -> Any:
        if _offline():
            from huggingface_hub.errors import OfflineModeIsEnabled

            raise _translate(OfflineModeIsEnabled("offline"), what, self.endpoint)
        try:
            return fn()
        except Cancelled:
            raise
        except Exception as err:  # huggingface_hub and httpx2 raise many types; translated
            error = _translate(err, what, self.endpoint)
            if transfer:
                error = DownloadError(
                    f"{error}; what was downloaded so far is kept in {self.dest} and the same "
                    "command (or Get) resumes it"
                )
            raise error from None

    def plan(self) -> Plan:
        """List the folder at the repository's current commit, with the model page's licence."""
        from huggingface_hub.hf_api import RepoFile

        api = self._api()
        what = f"{self.repo_id}"
        info = self._call(what, lambda: api.model_info(self.repo_id, revision=self.revision))
        commit = info.sha or self.revision or "main"
        tree = self._call(
            f"{self.repo_id}/{self.folder}",
            lambda: list(
                api.list_repo_tree(
                    self.repo_id, path_in_repo=self.folder, recursive=True, revision=commit
                )
            ),
        )
        files = [
            FileSpec(
                name=safe_name(f.path[len(self.folder) + 1 :]),
                size=int(f.size),
                sha256=f.lfs.sha256 if f.lfs is not None else None,
                git_oid=None if f.lfs is not None else f.blob_id,
                remote=f.path,
            )
            for f in tree
            if isinstance(f, RepoFile) and f.path.startswith(self.folder + "/")
        ]
        if not files:
            raise DownloadError(
                f"{self.repo_id} has no files under {self.folder}/ on {self.endpoint}; check "
                "the folder name"
            )
        licence_id, text = self._licence(info, commit)
        return Plan(
            source=self.name,
            label=f"{self.repo_id}/{self.folder} @ {commit[:12]}",
            files=files,
            licence_id=licence_id,
            licence_text=text,
            origin={
                "repo_id": self.repo_id,
                "folder": self.folder,
                "revision": commit,
                "endpoint": self.endpoint,
                "download_dir": str(self.dest),
            },
        )

    def _licence(self, info: Any, commit: str) -> tuple[str, str]:
        """The licence id of the model card and the text of its licence section or file."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        def read(name: str) -> str:  # in memory: planning writes nothing to disk
            url = hf_hub_url(self.repo_id, name, revision=commit, endpoint=self.endpoint)
            response = get_session().get(url, headers=build_hf_headers())
            hf_raise_for_status(response)
            return response.content[: 4 * _MAX_LICENCE_CHARS].decode("utf-8", "replace")

        card = getattr(info, "card_data", None)
        licence_id = str(getattr(card, "license", None) or "") if card is not None else ""
        siblings = {s.rfilename for s in (getattr(info, "siblings", None) or [])}
        parts: list[str] = []
        for name in ("LICENSE", "LICENSE.md", "LICENSE.txt", "README.md"):
            if name not in siblings:
                continue
            text = self._call(f"{self.repo_id}/{name}", lambda n=name: read(n))
            if name == "README.md":
                text = _licence_section(text) if parts or _licence_section(text) else text
            if text:
                parts.append(f"--- {name} ---\n{text.strip()}")
        if not parts:
            parts.append(
                f"The model page of {self.repo_id} states no licence text. Its parts come from "
                "SAM 2 (Apache-2.0) and BEiT-3 (MIT); ask the authors before any use beyond "
                "research."
            )
        head = f"Licence: {licence_id or 'not stated'} ({self.endpoint}/{self.repo_id})\n\n"
        return licence_id, (head + "\n\n".join(parts))[:_MAX_LICENCE_CHARS]

    # ------------------------------------------------------------------ transfer
    def _record(self) -> dict[str, Any]:
        try:
            data = json.loads((self.dest / _RECORD).read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def missing_bytes(self, plan: Plan) -> int:
        """Bytes of the plan not yet in the download folder (parts count as done)."""
        record = self._record()
        same = record.get("revision") == plan.origin.get("revision")
        missing = 0
        for spec in plan.files:
            final, part = self.dest / spec.name, self.dest / (spec.name + ".part")
            if same and final.is_file() and final.stat().st_size == spec.size:
                continue
            have = part.stat().st_size if same and part.is_file() else 0
            missing += max(0, spec.size - min(have, spec.size))
        return missing

    def fetch(
        self,
        plan: Plan,
        *,
        on_progress: Callable[[ProgressState], None] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> Path:
        """Download the plan's files into ``<downloads>/<owner>--<name>/<folder>`` (resuming)."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.file_download import http_get
        from huggingface_hub.utils import build_hf_headers

        revision = str(plan.origin["revision"])
        self.dest.mkdir(parents=True, exist_ok=True)
        record = self._record()
        if record.get("revision") != revision:  # another commit: its files are not ours
            for stale in [p for p in self.dest.rglob("*") if p.is_file()]:
                stale.unlink()
            record = {"revision": revision, "etags": {}}
        (self.dest / _RECORD).write_text(json.dumps(record))
        progress = Progress(on_progress, "download", plan.nbytes)
        before = 0
        for spec in plan.files:
            final, part = self.dest / spec.name, self.dest / (spec.name + ".part")
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.is_file() and final.stat().st_size == spec.size:
                before += spec.size
                progress.set(before, spec.name)
                continue
            if self._from_cache(spec, revision, final):
                before += spec.size
                progress.set(before, spec.name)
                continue
            url = hf_hub_url(self.repo_id, spec.remote, revision=revision, endpoint=self.endpoint)
            meta = self._call(
                spec.remote, lambda u=url: get_hf_file_metadata(u, endpoint=self.endpoint)
            )
            if record["etags"].get(spec.name) != meta.etag and part.exists():
                part.unlink()  # the part belongs to other content
            record["etags"][spec.name] = meta.etag
            (self.dest / _RECORD).write_text(json.dumps(record))
            have = part.stat().st_size if part.is_file() else 0
            if have > spec.size:
                part.unlink()
                have = 0
            progress.set(before + have, spec.name)
            with open(part, "ab") as out:
                self._call(
                    spec.remote,
                    lambda o=out, h=have, m=meta, s=spec, b=before: http_get(
                        m.location,
                        o,
                        resume_size=h,
                        headers=build_hf_headers(),
                        expected_size=s.size,
                        displayed_filename=s.name,
                        tqdm_class=_bar_class(progress, b, is_cancelled),
                    ),
                    transfer=True,
                )
            os.replace(part, final)
            before += spec.size
        return self.dest

    def _from_cache(self, spec: FileSpec, revision: str, final: Path) -> bool:
        """Link (or copy) ``spec`` from the Hugging Face cache when it holds this commit's file."""
        import shutil

        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(
            self.repo_id, spec.remote, cache_dir=hub_cache(), revision=revision
        )
        if not isinstance(cached, str) or os.path.getsize(cached) != spec.size:
            return False
        try:
            os.link(os.path.realpath(cached), final)
        except OSError:
            shutil.copyfile(cached, final)
        return True

    def discard(self, plan: Plan) -> int:
        """Delete the download folder of this repository folder."""
        import shutil

        if not self.dest.is_dir():
            return 0
        freed = sum(p.stat().st_size for p in self.dest.rglob("*") if p.is_file())
        shutil.rmtree(self.dest)
        return freed


_SECTION = re.compile(r"^#{1,6}\s*licen[cs]e\b.*$", re.IGNORECASE | re.MULTILINE)


def _licence_section(readme: str) -> str:
    """The "License" section of a model card (to the next heading of the same or higher level)."""
    match = _SECTION.search(readme)
    if match is None:
        return ""
    level = len(match.group(0)) - len(match.group(0).lstrip("#"))
    rest = readme[match.end() :]
    end = re.search(rf"^#{{1,{level}}}\s", rest, re.MULTILINE)
    return (match.group(0) + rest[: end.start() if end else len(rest)]).strip()
