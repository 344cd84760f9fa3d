"""A stand-in of the Hugging Face Hub on 127.0.0.1, for the model manager's tests.

It answers what ``huggingface_hub`` (2.x) asks when our hub source plans and downloads one folder
of a model repository:

* ``GET /api/models/{repo}[/revision/{rev}]``: model info (``sha``, ``siblings``, ``cardData``);
* ``GET /api/models/{repo}/tree/{rev}/{path}?recursive=...``: the files with ``size``, ``oid``
  (git blob id) and, for weight files, ``lfs`` (``oid`` = SHA-256, ``size``);
* ``HEAD /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag`` (git blob id) or, for LFS
  files, ``X-Linked-Etag`` (SHA-256) and ``X-Linked-Size``;
* ``GET /{repo}/resolve/{rev}/{path}``: the bytes, honouring ``Range: bytes=N-`` (206);
* an unknown repository: 404 with ``X-Error-Code: RepoNotFound``.

Faults a test can switch on: ``drop_after`` (send the full ``Content-Length`` but close the
connection after that many bytes of a file, and answer 503 to every later GET of the file until
``heal()``), ``bytes_per_s`` (throttle, for cancel tests and screenshots) and ``corrupt`` (serve
one byte changed while the tree still publishes the true hash). Every request is logged.

Run it on its own (for the desktop screenshot)::

    python tests/backend/hub_standin.py --release DIR --port 8765 --bytes-per-s 2000000
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = "ReeF2025/RS2-SAM2"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
README = """---
license: other
---
# RS2-SAM2 (test stand-in)

## License

These test weights may be used for testing the model manager only.
"""


def git_oid(data: bytes) -> str:
    """The git blob id of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class HubState:
    """The served repository and the switchable faults."""

    repo: str = REPO
    files: dict[str, bytes] = field(default_factory=dict)
    lfs_suffixes: tuple[str, ...] = (".safetensors", ".bin", ".model")
    drop_after: dict[str, int] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    bytes_per_s: float = 0.0
    log: list[dict] = field(default_factory=list)
    served: dict[str, int] = field(default_factory=dict)

    def heal(self) -> None:
        """Stop dropping and failing (the network is back)."""
        self.drop_after.clear()
        self.dropped.clear()

    def add_folder(self, folder: Path, prefix: str) -> None:
        """Serve every file of ``folder`` under ``prefix/`` in the repository."""
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.files[f"{prefix}/{path.relative_to(folder).as_posix()}"] = path.read_bytes()

    def is_lfs(self, path: str) -> bool:
        """Weight and tokeniser files are LFS files (their SHA-256 is published)."""
        return path.endswith(self.lfs_suffixes)


def _handler(state: HubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def _json(self, body: object, status: int = 200) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _not_found(self, code: str) -> None:
            raw = json.dumps({"error": f"{code} (stand-in)"}).encode()
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _route(self) -> tuple[str, str, str] | None:
            path = unquote(urlsplit(self.path).path)
            state.log.append(
                {"method": self.command, "path": path, "range": self.headers.get("Range")}
            )
            if path.startswith("/api/models/"):
                rest = path[len("/api/models/") :]
                if not rest.startswith(state.repo + "/") and rest != state.repo:
                    return ("missing", "", "")
                tail = rest[len(state.repo) :].lstrip("/")
                if tail.startswith("tree/"):
                    _, rev, *sub = tail.split("/")
                    return ("tree", rev, "/".join(sub))
                return ("info", "", "")
            match = re.match(r"^/(.+?)/resolve/([^/]+)/(.+)$", path)
            if match is None:
                return None
            if match.group(1) != state.repo:
                return ("missing", "", "")
            return ("file", match.group(2), match.group(3))

        def do_GET(self) -> None:
            route = self._route()
            if route is None or route[0] == "missing":
                self._not_found("RepoNotFound")
            elif route[0] == "info":
                self._json(
                    {
                        "id": state.repo,
                        "sha": COMMIT,
                        "siblings": [{"rfilename": p} for p in state.files],
                        "cardData": {"license": "other"},
                        "private": False,
                        "tags": [],
                    }
                )
            elif route[0] == "tree":
                self._json(self._tree(route[2]))
            else:
                self._file(route[2], head=False)

        def do_HEAD(self) -> None:
            route = self._route()
            if route is None or route[0] != "file":
                self._not_found("RepoNotFound")
            else:
                self._file(route[2], head=True)

        def _tree(self, sub: str) -> list[dict]:
            out = []
            for path, data in state.files.items():
                if sub and not path.startswith(sub.rstrip("/") + "/"):
                    continue
                entry = {"type": "file", "path": path, "size": len(data), "oid": git_oid(data)}
                if state.is_lfs(path):
                    sha = hashlib.sha256(data).hexdigest()
                    entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
                out.append(entry)
            return out

        def _file(self, path: str, head: bool) -> None:
            data = state.files.get(path)
            if data is None:
                self._not_found("EntryNotFound")
                return
            if not head and path in state.dropped:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path in state.corrupt:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            start = 0
            wanted = self.headers.get("Range")
            if wanted and (m := re.match(r"bytes=(\d+)-$", wanted)):
                start = int(m.group(1))
            body = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", COMMIT)
            if state.is_lfs(path):
                sha = hashlib.sha256(state.files[path]).hexdigest()
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("ETag", f'"{sha}"')
            else:
                self.send_header("ETag", f'"{git_oid(state.files[path])}"')
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if head:
                return
            limit = state.drop_after.get(path)
            sent = 0
            chunk = 16 * 1024
            while sent < len(body):
                piece = body[sent : sent + chunk]
                if limit is not None and sent + len(piece) > limit:
                    piece = piece[: max(0, limit - sent)]
                    self.wfile.write(piece)
                    state.served[path] = state.served.get(path, 0) + len(piece)
                    state.dropped.add(path)
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(piece)
                sent += len(piece)
                state.served[path] = state.served.get(path, 0) + len(piece)
                if state.bytes_per_s:
                    time.sleep(len(piece) / state.bytes_per_s)

    return Handler


class HubStandIn:
    """The server, in a thread. ``url`` is what ``HF_ENDPOINT`` must be set to."""

    def __init__(self, state: HubState, port: int = 0) -> None:
        self.state = state
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="serve a release folder as ReeF2025/RS2-SAM2")
    parser.add_argument("--release", type=Path, required=True, help="folder served as rrsisd/")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--bytes-per-s", type=float, default=0.0)
    args = parser.parse_args()
    state = HubState(bytes_per_s=args.bytes_per_s)
    state.add_folder(args.release, "rrsisd")
    state.files["README.md"] = README.encode()
    with HubStandIn(state, args.port) as hub:
        print(hub.url, flush=True)
        hub.thread.join()


if __name__ == "__main__":
    _main()
