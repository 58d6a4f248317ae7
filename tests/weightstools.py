"""Helpers for the weights tests: registry entries without checksums, file hashes, the cache's
listing, and a local HTTP server to pull from."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading
from pathlib import Path

from vstpipe import weights
from vstpipe.weights import FileSpec, ModelSpec


def unpublished(name: str) -> ModelSpec:
    """The registry entry with no published sha256/size, so random weights are accepted."""
    ms = weights.REGISTRY[name]
    files = tuple(dataclasses.replace(f, sha256=None, size=None) for f in ms.files)
    return dataclasses.replace(ms, files=files)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_files(name: str) -> list[str]:
    folder = weights.model_dir(name)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


class Server:
    """Serves ``routes[path] = bytes``; paths under /drop/ announce the full length but send
    half and close, like a connection lost mid-file."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.hits: list[str] = []
        routes, hits = self.routes, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                body = routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path.startswith("/drop/")
                                 else body)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                """Keep the test output quiet."""

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def served_spec(server: Server, files: dict[str, Path], *, prefix: str = "/w/",
                sha256: dict[str, str | None] | None = None) -> ModelSpec:
    """A uvc-lab spec whose files come from ``server`` with their true sha256/size (or the
    overrides in ``sha256``)."""
    specs = []
    for role, path in files.items():
        server.routes[prefix + path.name] = path.read_bytes()
        sha = (sha256 or {}).get(role, sha256_of(path))
        specs.append(FileSpec(role, path.name, server.url(prefix + path.name), sha,
                              path.stat().st_size if sha is not None else None))
    return dataclasses.replace(weights.REGISTRY["uvc-lab"], files=tuple(specs))
