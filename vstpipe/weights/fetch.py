"""Downloading registry models into the cache over HTTP(S), checked before they land.

Each file streams into a staged temp file (store.staging) while it is hashed; the byte count,
size, sha256 (or git blob id) and layout are checked before it is claimed under its published
name and recorded in the manifest.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from .. import __version__
from ..errors import ChecksumError, DownloadError, OptionError
from ..model import check_layout
from . import store
from .registry import FileSpec, ModelSpec, spec_for
from .safety import load_state, one_line

ProgressFn = Callable[[str, int, int | None], None]  # (file name, bytes so far, total or None)


def offline_from_env() -> bool:
    """``VSTPIPE_OFFLINE``: 1/true/yes/on -> offline; unset, empty, 0/false/no/off -> online."""
    value = os.environ.get("VSTPIPE_OFFLINE", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise OptionError(f"VSTPIPE_OFFLINE='{value}' is not valid; use 1 (offline) or 0 (online)")


def pull(name: str, *, on_progress: ProgressFn | None = None, model: ModelSpec | None = None,
         timeout: float = 30) -> Path:
    """Download the files of ``name`` that are missing or changed; returns the model dir.

    ``model`` replaces the registry entry (tests point it at a local server); its name must be
    ``name``. ``timeout`` is per connect and per read, in seconds.
    """
    ms = spec_for(name, model)
    if ms.embedded:  # nothing to download: check what ships
        store.check_embedded(ms)
        return store.embedded_dir(ms.name)
    with store.model_folder(ms.name) as folder:
        manifest = store.read_manifest(folder, ms)
        for f in ms.files:
            if not store.installed_ok(folder, f, manifest):
                sha256, size = _download(ms, f, folder, on_progress, timeout)
                entry = store.manifest_entry(f.role, folder / f.name, sha256, size, f.url)
                store.record(folder, ms, {f.name: entry})
    return folder


def _download(ms: ModelSpec, f: FileSpec, folder: Path, on_progress: ProgressFn | None,
              timeout: float) -> tuple[str, int]:
    """Stream ``f.url`` into a temp file, check it, and move it onto ``folder / f.name``."""
    host = urlsplit(f.url).hostname or f.url

    def failed(reason: str) -> DownloadError:
        return DownloadError(f"cannot download {ms.name} {f.name} from {host}: {reason}; check "
                             f"the network, or copy the files in with "
                             f"`vstpipe models import {ms.name} FILE...`")

    with store.staging(folder, f.name) as tmp:
        try:
            request = urllib.request.Request(f.url,
                                             headers={"User-Agent": f"vstpipe/{__version__}"})
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise failed(f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:  # DNS failure, refused, unreachable, TLS
            raise failed(one_line(exc.reason)) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:  # timeouts, bad replies
            raise failed(one_line(exc)) from None
        with response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and f.size is not None and total != f.size:
                raise ChecksumError(f"{f.url}: the server offers {total} bytes, the published "
                                    f"{ms.name} {f.role} has {f.size}; not the published file "
                                    f"(replaced upstream?); import a verified copy with "
                                    f"`vstpipe models import {ms.name} FILE...`")
            digest, done = hashlib.sha256(), 0
            with tmp.open("wb") as out:
                try:
                    while chunk := response.read(store.CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(f.name, done, total if total is not None else f.size)
                except (OSError, http.client.HTTPException) as exc:
                    raise failed(f"connection lost after {done} bytes ({one_line(exc)})"
                                 ) from None
                out.flush()
                os.fsync(out.fileno())
        # http.client returns a short body without raising when the peer closes early, so the
        # byte count is the only reliable sign of a dropped connection.
        if total is not None and done != total:
            raise failed(f"connection dropped after {done} of {total} bytes")
        sha256 = digest.hexdigest()
        store.check_published(ms, f, sha256, done, f.url, "not the published file (download cut "
                              "short or replaced upstream)", tmp)
        state = load_state(tmp, f.url, safetensors=f.name.endswith(".safetensors"))
        check_layout(ms.arch, f.role, state, f.url)
        store.claim(tmp, folder / f.name)
    return sha256, done
