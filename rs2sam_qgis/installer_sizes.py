"""Measured download size of a requirement set, from the package indexes' own metadata.

The requirement set is resolved the way pip would for this interpreter, far enough to know
which files it downloads: every index's simple-API page of a project (PEP 691 JSON, or the
PEP 503 HTML page), the newest version that satisfies the specifiers with a wheel for this
interpreter's tags (an sdist otherwise), that wheel's dependencies from its metadata file
(PEP 658 ``<file>.metadata``; never the wheel), and so on. The file sizes are what the index
states (PEP 700 ``size``) or a ``HEAD`` request's ``Content-Length``. Nothing is downloaded
but index pages and metadata files (kilobytes).

It is an estimate of pip's choice, not pip itself: when a project or a file's metadata cannot
be read, the estimate says so (:attr:`SizeEstimate.complete` is False) instead of guessing.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.parser import Parser
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

from .installer_index import JSON_ACCEPT, Http, failure_reason

try:  # QGIS's Python may lack the standalone package; pip always vendors it
    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.tags import sys_tags
    from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from pip._vendor.packaging.markers import default_environment  # type: ignore[no-redef]
        from pip._vendor.packaging.requirements import (  # type: ignore[no-redef]
            InvalidRequirement,
            Requirement,
        )
        from pip._vendor.packaging.tags import sys_tags  # type: ignore[no-redef]
        from pip._vendor.packaging.utils import (  # type: ignore[no-redef]
            canonicalize_name,
            parse_sdist_filename,
            parse_wheel_filename,
        )
        from pip._vendor.packaging.version import (  # type: ignore[no-redef]
            InvalidVersion,
            Version,
        )
    except ImportError:  # no pip either: the dialog still opens and says what is missing
        Requirement = None  # type: ignore[assignment,misc]

RANGE_CHUNK = 64 * 1024
"""Bytes per Range request when reading a wheel's directory and METADATA member."""
MAX_PROJECTS = 120
"""Stop after this many projects (a runaway dependency tree is reported as incomplete)."""


@dataclass(frozen=True)
class IndexFile:
    """One file of a project page.

    Attributes:
        filename: As listed.
        url: Absolute download URL.
        size: Bytes as the index states them (None when it does not).
        has_metadata: The index serves ``url + ".metadata"`` (PEP 658/714).
        yanked: Listed as yanked (pip skips it unless pinned).
    """

    filename: str
    url: str
    size: int | None = None
    has_metadata: bool = False
    yanked: bool = False


@dataclass(frozen=True)
class ChosenFile:
    """The file one project would be downloaded as."""

    project: str
    version: str
    filename: str
    url: str
    size: int | None


@dataclass
class SizeEstimate:
    """The measured size of an install.

    Attributes:
        files: One file per project, in resolution order.
        problems: What could not be measured ("torch: no file for this Python", ...).
    """

    files: list[ChosenFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        """Sum of the known file sizes."""
        return sum(f.size or 0 for f in self.files)

    @property
    def complete(self) -> bool:
        """True when every file and every size is known."""
        return not self.problems and all(f.size is not None for f in self.files)


def human_bytes(n: int) -> str:
    """``1.23 GB`` / ``45.6 MB`` / ``789 kB`` (decimal units, as pip prints)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{n} B"


class _RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file: every read is one HTTP Range request."""

    def __init__(self, http: Http, url: str, size: int) -> None:
        super().__init__()
        self.http, self.url, self.size, self.pos = http, url, size, 0
        self.requests = 0
        self._block: tuple[int, bytes] = (0, b"")

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        start, block = self._block
        if not (start <= self.pos and self.pos + want <= start + len(block)):
            start, block = self.pos, self._fetch(self.pos, max(want, RANGE_CHUNK))
            self._block = (start, block)
        data = block[self.pos - start : self.pos - start + want]
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)

    def _fetch(self, first: int, length: int) -> bytes:
        self.requests += 1
        if self.requests > 16:  # a directory needing more is not worth measuring
            raise OSError(f"too many range requests for {self.url}")
        last = min(first + length, self.size) - 1
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={first}-{last}"})
        opener = self.http.opener(self.url)  # http(s) only
        with opener.open(request, timeout=self.http.timeout_s) as resp:  # nosec B310
            if resp.status != 206:
                raise OSError(f"{self.url} ignores Range requests")
            return bytes(resp.read(last - first + 1))


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[dict[str, str | None], str]] = []
        self._attrs: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._attrs, self._text = dict(attrs), ""

    def handle_data(self, data: str) -> None:
        if self._attrs is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._attrs is not None:
            self.links.append((self._attrs, self._text.strip()))
            self._attrs = None


def parse_project_page(body: bytes, content_type: str, page_url: str) -> list[IndexFile]:
    """The files of a simple-API project page (JSON or HTML)."""
    if "json" in content_type:
        data = json.loads(body.decode("utf-8"))
        out = []
        for item in data.get("files", []):
            meta = item.get("core-metadata", item.get("dist-info-metadata", False))
            out.append(IndexFile(
                filename=item["filename"],
                url=urljoin(page_url, item["url"]),
                size=item.get("size") if isinstance(item.get("size"), int) else None,
                has_metadata=bool(meta),
                yanked=bool(item.get("yanked", False)),
            ))
        return out
    parser = _LinkParser()
    parser.feed(body.decode("utf-8", errors="replace"))
    out = []
    for attrs, text in parser.links:
        href = attrs.get("href") or ""
        meta = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        url = urljoin(page_url, href).split("#", 1)[0]
        out.append(IndexFile(
            filename=text or url.rsplit("/", 1)[-1],
            url=url,
            has_metadata=meta is not None and meta != "false",
            yanked="data-yanked" in attrs,
        ))
    return out


class Resolver:
    """Follows a requirement set through the indexes (see the module docstring).

    Args:
        http: Requests with pip's proxy and certificates.
        indexes: The indexes pip reads, main index first.
        tags: Supported wheel tags (default: this interpreter's).
        environment: Marker environment (default: this interpreter's).
    """

    def __init__(
        self,
        http: Http,
        indexes: Sequence[str],
        tags: Iterable[Any] | None = None,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.http = http
        self.indexes = [u.rstrip("/") for u in indexes]
        tag_list = list(tags if tags is not None else sys_tags())
        self.tag_rank = {tag: i for i, tag in enumerate(tag_list)}  # lower = preferred
        self.environment = environment or dict(default_environment())

    def project_files(self, name: str) -> tuple[list[IndexFile], list[str]]:
        """Every index's files for ``name`` and the indexes that failed (with reasons)."""
        files: list[IndexFile] = []
        failed: list[str] = []
        for index in self.indexes:
            url = f"{index}/{canonicalize_name(name)}/"
            try:
                body, ctype, final = self.http.read(url, accept=JSON_ACCEPT)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    failed.append(f"{index}: {failure_reason(exc)}")
                continue
            except (OSError, ValueError) as exc:
                failed.append(f"{index}: {failure_reason(exc)}")
                continue
            files += parse_project_page(body, ctype, final)
        return files, failed

    def choose(self, req: Requirement, files: list[IndexFile]) -> tuple[IndexFile, Version] | None:
        """The file pip would take: newest allowed version, best wheel tag, else an sdist."""
        best: tuple[tuple[Any, ...], IndexFile, Version] | None = None
        for f in files:
            try:
                if f.filename.endswith(".whl"):
                    _, version, _, tags = parse_wheel_filename(f.filename)
                    ranks = [self.tag_rank[t] for t in tags if t in self.tag_rank]
                    if not ranks:
                        continue
                    key: tuple[Any, ...] = (version, 1, -min(ranks))
                elif f.filename.endswith((".tar.gz", ".zip")):
                    _, version = parse_sdist_filename(f.filename)
                    key = (version, 0, 0)
                else:
                    continue
            except (ValueError, InvalidVersion):
                continue
            if f.yanked or not req.specifier.contains(version, prereleases=False):
                continue
            if best is None or key > best[0]:
                best = (key, f, version)
        return None if best is None else (best[1], best[2])

    def dependencies(self, f: IndexFile, extras: set[str]) -> list[Requirement] | None:
        """Requirements from the file's metadata (None when the index does not serve it).

        The metadata file is asked for even when the page does not advertise it (some mirrors
        drop the PEP 714 key but serve the file); sdists have none.
        """
        if not f.filename.endswith(".whl") and not f.has_metadata:
            return None
        try:
            body, _, _ = self.http.read(f.url + ".metadata")
        except (OSError, ValueError):
            body = self._metadata_by_range(f)
        if body is None:
            return None
        message = Parser().parsestr(body.decode("utf-8", errors="replace"))
        out = []
        for line in message.get_all("Requires-Dist") or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is None or any(
                req.marker.evaluate({**self.environment, "extra": e}) for e in (extras or {""})
            ):
                out.append(req)
        return out

    def _metadata_by_range(self, f: IndexFile) -> bytes | None:
        """A wheel's ``*.dist-info/METADATA`` read with HTTP Range requests (a few kB).

        For indexes that list no metadata files (some mirrors): the zip's directory and the one
        member are read from the file's end; a server that ignores Range is not read further.
        """
        size = self.size_of(f)
        if not f.filename.endswith(".whl") or not size:
            return None
        try:
            with zipfile.ZipFile(_RangeFile(self.http, f.url, size)) as archive:
                names = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
                return archive.read(names[0]) if names else None
        except (OSError, ValueError, zipfile.BadZipFile, KeyError):
            return None

    def size_of(self, f: IndexFile) -> int | None:
        """The index's stated size, else ``Content-Length`` of a HEAD request."""
        if f.size is not None:
            return f.size
        try:
            with self.http.open(f.url, method="HEAD") as response:
                length = response.headers.get("Content-Length")
        except (OSError, ValueError):
            return None
        return int(length) if length and length.isdigit() else None

    def _visit(self, req: Requirement) -> tuple[ChosenFile | None, list[Requirement], list[str]]:
        files, failed = self.project_files(req.name)
        chosen = self.choose(req, files)
        if chosen is None:
            where = "; ".join(failed) if failed else ", ".join(self.indexes)
            return None, [], [f"{req}: no matching file ({where})"]
        f, version = chosen
        deps = self.dependencies(f, set(req.extras))
        problems = [] if deps is not None else [f"{req.name}: dependencies not listed by the index"]
        picked = ChosenFile(canonicalize_name(req.name), str(version), f.filename, f.url,
                            self.size_of(f))
        return picked, deps or [], problems

    def measure(self, requirements: Sequence[str], workers: int = 8) -> SizeEstimate:
        """Resolve ``requirements`` level by level and add up the chosen files' sizes."""
        if Requirement is None:
            raise RuntimeError("neither 'packaging' nor pip is installed in this Python")
        estimate = SizeEstimate()
        seen: set[str] = set()
        level = [Requirement(r) for r in requirements]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            while level and len(seen) < MAX_PROJECTS:
                todo = []
                for req in level:
                    key = canonicalize_name(req.name)
                    if key not in seen:
                        seen.add(key)
                        todo.append(req)
                next_level: list[Requirement] = []
                for picked, deps, problems in pool.map(self._visit, todo):
                    if picked is not None:
                        estimate.files.append(picked)
                    estimate.problems += problems
                    next_level += deps
                level = next_level
        if level and len(seen) >= MAX_PROJECTS:
            estimate.problems.append(f"more than {MAX_PROJECTS} projects: stopped counting")
        return estimate
