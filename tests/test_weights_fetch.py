"""weights.fetch: pull against a local HTTP server (tests/weightstools.py) installs and
records, or fails with one line and leaves nothing behind; VSTPIPE_OFFLINE."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from weightstools import Server, cache_files, served_spec, sha256_of

from vstpipe import weights
from vstpipe.errors import ChecksumError, DownloadError, LayoutError, OptionError
from vstpipe.weights import FileSpec

pytestmark = pytest.mark.usefixtures("offline_home")  # conftest.py



@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


def test_offline_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert weights.offline_from_env() is False
    monkeypatch.setenv("VSTPIPE_OFFLINE", "1")
    assert weights.offline_from_env() is True
    monkeypatch.setenv("VSTPIPE_OFFLINE", "0")
    assert weights.offline_from_env() is False
    monkeypatch.setenv("VSTPIPE_OFFLINE", "maybe")
    with pytest.raises(OptionError, match="VSTPIPE_OFFLINE='maybe'"):
        weights.offline_from_env()


def test_pull_installs_checks_and_records(server: Server, uvc_random: dict[str, Path]) -> None:
    ms = served_spec(server, uvc_random)
    progress: list[tuple[str, int, int | None]] = []
    folder = weights.pull("uvc-lab", model=ms, on_progress=lambda *a: progress.append(a))

    assert cache_files("uvc-lab") == sorted([weights.MANIFEST, *(p.name for p in
                                                                 uvc_random.values())])
    manifest = json.loads((folder / weights.MANIFEST).read_text())
    for role, src in uvc_random.items():
        entry = manifest["files"][src.name]
        assert entry["sha256"] == sha256_of(folder / src.name) == sha256_of(src)
        assert (entry["role"], entry["size"]) == (role, src.stat().st_size)
        assert entry["source"] == server.url("/w/" + src.name)
        counts = [done for name, done, _ in progress if name == src.name]
        assert len(counts) > 1 and counts == sorted(set(counts))
        assert counts[-1] == src.stat().st_size
        assert {total for name, _, total in progress if name == src.name} == \
            {src.stat().st_size}
    assert weights.status("uvc-lab").installed

    hits = len(server.hits)
    weights.pull("uvc-lab", model=ms)  # everything verified in place: nothing downloaded again
    assert len(server.hits) == hits


def test_pull_checks_the_layout(server: Server, uvc_random: dict[str, Path]) -> None:
    # the decoder's bytes served under the encoder's name, no sha256 to catch it
    server.routes["/x/encoder_single_gpu.pth"] = uvc_random["decoder"].read_bytes()
    ms = dataclasses.replace(weights.REGISTRY["uvc-lab"], files=(FileSpec(
        "encoder", "encoder_single_gpu.pth", server.url("/x/encoder_single_gpu.pth"), None,
        None),))
    with pytest.raises(LayoutError, match=r"missing key 'conv1.weight' for the uvc-lab encoder"):
        weights.pull("uvc-lab", model=ms)
    assert cache_files("uvc-lab") == []


def test_pull_wrong_sha256_leaves_nothing(server: Server, uvc_random: dict[str, Path]) -> None:
    ms = served_spec(server, uvc_random, sha256={"encoder": "0" * 64})
    with pytest.raises(ChecksumError, match=r"sha256 .* differs from the published uvc-lab "
                                            r"encoder \(encoder_single_gpu.pth\)"):
        weights.pull("uvc-lab", model=ms)
    assert cache_files("uvc-lab") == []


def test_pull_detects_a_dropped_connection(server: Server,
                                           uvc_random: dict[str, Path]) -> None:
    # no size or sha256 in the spec: only the Content-Length can reveal the short body
    ms = served_spec(server, uvc_random, prefix="/drop/",
                     sha256={"encoder": None, "decoder": None})
    with pytest.raises(DownloadError, match=r"dropped after \d+ of \d+ bytes.*vstpipe models "
                                            r"import uvc-lab FILE"):
        weights.pull("uvc-lab", model=ms)
    assert cache_files("uvc-lab") == []


def test_pull_interrupted_leaves_nothing(server: Server, uvc_random: dict[str, Path]) -> None:
    def interrupt(name: str, done: int, total: int | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        weights.pull("uvc-lab", model=served_spec(server, uvc_random), on_progress=interrupt)
    assert cache_files("uvc-lab") == []


def test_pull_http_error(server: Server, uvc_random: dict[str, Path]) -> None:
    ms = served_spec(server, uvc_random)
    server.routes.clear()
    with pytest.raises(DownloadError, match=r"HTTP 404"):
        weights.pull("uvc-lab", model=ms)
    assert cache_files("uvc-lab") == []


def test_pull_unreachable_names_host_and_import(uvc_random: dict[str, Path]) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ms = dataclasses.replace(weights.REGISTRY["uvc-lab"], files=tuple(
        dataclasses.replace(f, url=f"http://127.0.0.1:{port}/{f.name}")
        for f in weights.REGISTRY["uvc-lab"].files))
    with pytest.raises(DownloadError) as info:
        weights.pull("uvc-lab", model=ms, timeout=5)
    message = str(info.value)
    assert "\n" not in message and "uvc-lab" in message and "127.0.0.1" in message
    assert "`vstpipe models import uvc-lab FILE...`" in message
    assert cache_files("uvc-lab") == []
