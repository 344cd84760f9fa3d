"""A package index on 127.0.0.1 for the installer tests (PEP 503 HTML / PEP 691 JSON, PEP 658).

``LocalIndex`` serves hand-made wheels from a folder under ``/simple/<project>/`` and the
files under ``/files/``; ``closed_port_url()`` gives an index URL nobody listens on (what an
unreachable PyTorch index looks like from behind a PyPI-only mirror).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_wheel(
    folder: Path, name: str = "rs2sam_probe", version: str = "1.0", requires: tuple[str, ...] = ()
) -> Path:
    """A minimal valid pure-Python wheel (py3-none-any) with one module; its METADATA is also
    written beside it as ``<wheel>.metadata`` (PEP 658)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{name}/__init__.py": f"VALUE = 42\nVERSION = {version!r}\n".encode(),
        f"{dist}/METADATA": metadata.encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    (folder / (wheel.name + ".metadata")).write_bytes(metadata.encode())
    return wheel


def _project(filename: str) -> str:
    return re.sub(r"[-_.]+", "-", filename.split("-", 1)[0]).lower()


class LocalIndex:
    """Serve every ``*.whl`` of ``folder`` as a simple index on 127.0.0.1 (a daemon thread).

    Args:
        folder: Wheels (and their ``.metadata`` files).
        with_sizes: Put PEP 700 ``size`` into the JSON pages (else clients need HEAD).
        metadata: Serve and advertise the PEP 658 ``.metadata`` files.

    Files answer HTTP Range requests (206), as PyPI's file host does.
    """

    def __init__(self, folder: Path, with_sizes: bool = True, metadata: bool = True) -> None:
        self.folder = folder
        self.with_sizes = with_sizes
        self.metadata = metadata  # False: like a mirror that serves no .metadata files
        self.requests: list[str] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                index.requests.append(f"{self.command} {self.path}")
                body, ctype = index.answer(self.path, self.headers.get("Accept", ""))
                if body is None:
                    self.send_error(404)
                    return
                wanted = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
                if wanted and self.path.startswith("/files/"):
                    first, last = int(wanted.group(1)), int(wanted.group(2))
                    body = body[first : last + 1]
                    self.send_response(206)
                else:
                    self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str, accept: str) -> tuple[bytes | None, str]:
        """Body and content type for ``path`` (None: 404)."""
        if path.startswith("/files/"):
            file = self.folder / path.removeprefix("/files/")
            if file.name.endswith(".metadata") and not self.metadata:
                return None, ""
            if file.is_file() and file.parent == self.folder:
                return file.read_bytes(), "application/octet-stream"
            return None, ""
        match = re.fullmatch(r"/simple/([^/]+)/?", path)
        if not match:
            return None, ""
        wheels = sorted(w for w in self.folder.glob("*.whl") if _project(w.name) == match.group(1))
        if not wheels:
            return None, ""
        if "application/vnd.pypi.simple.v1+json" in accept:
            files = []
            for wheel in wheels:
                item = {"filename": wheel.name, "url": f"/files/{wheel.name}", "hashes": {}}
                if self.metadata:
                    item["core-metadata"] = True
                if self.with_sizes:
                    item["size"] = wheel.stat().st_size
                files.append(item)
            data = {"meta": {"api-version": "1.1"}, "name": match.group(1), "files": files}
            return json.dumps(data).encode(), "application/vnd.pypi.simple.v1+json"
        meta = ' data-core-metadata="true"' if self.metadata else ""
        links = "".join(f'<a href="/files/{w.name}"{meta}>{w.name}</a><br>' for w in wheels)
        return f"<html><body>{links}</body></html>".encode(), "text/html"

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def closed_port_url(path: str = "/whl/cpu") -> str:
    """An http URL on 127.0.0.1 whose port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
