"""Hostile clients of `vstpipe serve`: broken headers, sizes over the limits, clients that hang
up, stall, never read or sit idle, backwards scrubbing, stale socket files and SIGTERM. The
promise: every bad request gets a one-line error reply or its client is dropped, memory stays
bounded, and the server goes on serving the next client."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vstpipe import effects, serve
from vstpipe.errors import OutputError, ParamError

ECHO = "org.vstpipe.echo"
# The documented limits (plugins/README.md), spelled out so the tests hold the server to them.
MAX_DEPTH, MAX_PAYLOAD, MAX_PIXELS = 32, 1 << 31, 1 << 26
MAX_INSTANCES, MAX_KEYFRAMES, HISTORY = 16, 4096, 64


@pytest.fixture(scope="module")
def catalog() -> effects.Catalog:
    return effects.load_catalog()


# -- the protocol over in-memory streams ----------------------------------------------------------

def line(header: dict[str, Any], payload: bytes = b"") -> bytes:
    if payload:
        header = {**header, "bytes": len(payload)}
    return json.dumps(header).encode() + b"\n" + payload


def parse_replies(data: bytes) -> list[dict[str, Any]]:
    stream, out = io.BytesIO(data), []
    while header := stream.readline():
        reply = json.loads(header)
        stream.read(reply.get("bytes", 0))
        out.append(reply)
    return out


class Recording(io.BytesIO):
    """An input stream that remembers how many bytes each read asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


def session(raw: bytes, catalog: effects.Catalog) -> tuple[int, list[dict[str, Any]], Recording]:
    stdin, stdout = Recording(raw), io.BytesIO()
    status = serve.serve(stdin, stdout, catalog)
    return status, parse_replies(stdout.getvalue()), stdin


def assert_one_line(reply: dict[str, Any], *parts: str) -> None:
    assert reply["ok"] is False, reply
    assert "\n" not in reply["error"] and len(reply["error"]) <= 420, reply
    for part in parts:
        assert part in reply["error"], (part, reply)


BAD_HEADERS = [
    (b"[1, 2]", "header must be a JSON object, got list"),
    (b'"hello"', "header must be a JSON object, got str"),
    (b"[" * 100_000 + b"]" * 100_000, f"header nests deeper than {MAX_DEPTH} levels"),
    (b'{"op": "hello", "x": ' + b"[" * 40 + b"]" * 40 + b"}",
     f"header nests deeper than {MAX_DEPTH} levels"),
    (b'{"op": "hel\xfflo"}', "header is not UTF-8 (byte 0xff at offset 11)"),
    (b"\xfe\xff\x00{", "header is not UTF-8 (byte 0xfe at offset 0)"),
    (b'{"op": "hello", "id": NaN}', "NaN is not a number this protocol accepts"),
    (b'{"op": "frames_needed", "instance": 1, "time": 1e999}', "'1e999' is out of range"),
    (b'{"op": "hello", "id": ' + b"9" * 5000 + b"}", "an integer of 5000 digits; at most 20"),
    (b'{"op": "hello", "id": [1, 2]}', "'id' must be a number or a string"),
    (b'{"op": ["hello"]}', "unknown op ['hello']; use hello"),
    (b'{"op": "frames_needed", "instance": 1, "time": 12345678901234567890}',
     "no instance 1"),
]


def test_malformed_headers_get_one_line_errors_and_the_session_goes_on(catalog):
    raw = b"".join(bad + b"\n" for bad, _ in BAD_HEADERS) + line({"op": "hello", "id": 99})
    status, replies, _ = session(raw, catalog)
    assert status == 0
    assert len(replies) == len(BAD_HEADERS) + 1
    for reply, (_, expected) in zip(replies, BAD_HEADERS):
        assert_one_line(reply, expected)
    assert replies[-1]["ok"] and replies[-1]["id"] == 99


@pytest.mark.parametrize("size", [1 << 40, MAX_PAYLOAD + 1, -1, "12", 1.5, True, None])
def test_a_bytes_field_that_breaks_the_framing_is_refused_unread(size, catalog):
    raw = line({"op": "hello", "id": 1, "bytes": size}) + b"x" * 64 + line({"op": "hello"})
    status, replies, stdin = session(raw, catalog)
    assert status == 1  # what follows the header cannot be framed: the session ends
    assert len(replies) == 1
    assert_one_line(replies[0], "'bytes'", str(MAX_PAYLOAD), "closing the session")
    assert stdin.asked == []  # not a byte of the declared payload was asked for


def test_a_payload_the_request_cannot_use_is_skipped_in_chunks_not_held(catalog):
    size = 3 * serve.MAX_HEADER + 5
    raw = (line({"op": "hello", "id": 1}, b"\0" * size) + line({"op": "dance", "id": 2}, b"ab")
           + line({"op": "hello", "id": 3}))
    status, replies, stdin = session(raw, catalog)
    assert status == 0
    assert_one_line(replies[0], f"'hello' takes no payload, got {size} bytes")
    assert_one_line(replies[1], "unknown op 'dance'")
    assert [r["id"] for r in replies] == [1, 2, 3] and replies[2]["ok"]
    assert max(stdin.asked) <= 1 << 20


def test_a_header_line_over_the_limit_or_cut_off_ends_the_session_with_a_reply(catalog):
    status, replies, _ = session(b"{" * serve.MAX_HEADER + b"\n" + line({"op": "hello"}),
                                 catalog)
    assert status == 1 and len(replies) == 1
    assert_one_line(replies[0], f"header line longer than the limit of {serve.MAX_HEADER}")
    status, replies, _ = session(line({"op": "hello"}) + b'{"op": "hel', catalog)
    assert status == 1 and replies[0]["ok"]
    assert_one_line(replies[1], "stream ended 11 bytes into a header line")


def test_frame_sizes_are_refused_before_anything_is_allocated(catalog):
    asks = [
        ({"width": 10**7, "height": 10**7},
         "width and height must be 1 to 16384 pixels, got 10000000x10000000"),
        ({"width": 16384, "height": 16384},
         f"16384x16384 is 268435456 pixels; the limit is {MAX_PIXELS} per frame"),
        ({"width": 0, "height": 8}, "width and height must be 1 to 16384 pixels, got 0x8"),
        ({"width": "64", "height": 8}, "'create' needs 'width' of type int, got '64'"),
        ({"width": True, "height": 8}, "'create' needs 'width' of type int, got True"),
        ({"width": 8, "height": 8, "frame_rate": -1}, "'frame_rate' -1: use frames per second"),
        ({"width": 8, "height": 8, "frame_range": [5]}, "'frame_range': expected [first, last]"),
    ]
    raw = b"".join(line({"op": "create", "effect": ECHO, **ask}) for ask, _ in asks)
    raw += line({"op": "create", "effect": ECHO, "width": 8, "height": 8})
    status, replies, _ = session(raw, catalog)
    assert status == 0 and len(replies) == len(asks) + 1
    for reply, (_, expected) in zip(replies, asks):
        assert_one_line(reply, expected)
    assert replies[-1] == {"ok": True, "instance": 1, "depth": "byte"}


def refusal(server: serve.Server, header: dict[str, Any]) -> str:
    """The one-line error a request gets (the handler raises it; the session replies it)."""
    with pytest.raises(ParamError) as caught:
        server.handle(serve.Message(header))
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_instances_per_client_are_bounded(catalog):
    server = serve.Server(catalog)
    create = {"op": "create", "effect": ECHO, "width": 4, "height": 4}
    for _ in range(MAX_INSTANCES):
        server.handle(serve.Message(create))
    assert f"holds {MAX_INSTANCES} instances, the limit" in refusal(server, create)
    assert len(server.hosts) == MAX_INSTANCES
    server.handle(serve.Message({"op": "destroy", "instance": 3}))
    server.handle(serve.Message(create))
    server.close()
    assert server.hosts == {}


# -- bounded memory ---------------------------------------------------------------------------------

def frame(seed: float, size: tuple[int, int] = (16, 8)) -> bytes:
    return np.full((size[1], size[0], 4), int(seed) % 251, np.uint8).tobytes()


def render(server: serve.Server, instance: int, t: float, images: list[float]) -> None:
    """A render request with its Source frames, read off the wire as the server reads it."""
    payload = b"".join(frame(i) for i in images)
    header = {"op": "render", "instance": instance, "time": t,
              "images": [{"clip": "Source", "time": i} for i in images]}
    server.handle(serve.read_message(io.BytesIO(line(header, payload))))


@pytest.mark.parametrize("mode", ["trails", "difference"])
def test_scrubbing_backwards_keeps_a_bounded_history(mode, catalog):
    server = serve.Server(catalog)
    made, _ = server.handle(serve.Message({"op": "create", "effect": ECHO, "width": 16,
                                           "height": 8, "frame_range": [0, 400]}))
    inst = made["instance"]
    server.handle(serve.Message({"op": "set", "instance": inst, "params": {"mode": mode}}))
    clips = server.hosts[inst].instance.clips
    most = 0
    for t in range(400, -1, -1):  # a client dragging the playhead backwards, frame by frame
        render(server, inst, t, [t - 1, t] if mode == "difference" else [t])
        most = max(most, *(len(c.frames) for c in clips.values()))
    assert most <= 2
    # The frames the next render may read, and nothing after them.
    assert set(clips["Output"].frames) == {0.0}
    assert set(clips["Source"].frames) == ({-1.0, 0.0} if mode == "difference" else {0.0})


def test_fractional_times_and_failed_renders_do_not_pile_up_frames(catalog):
    server = serve.Server(catalog)
    made, _ = server.handle(serve.Message({"op": "create", "effect": ECHO, "width": 16,
                                           "height": 8}))
    inst = made["instance"]
    host = server.hosts[inst]
    keep = 2 * HISTORY + 1
    for k in range(400):  # steps far smaller than a frame all fall inside [t - 1, t]
        render(server, inst, 10 + k * 1e-4, [10 + k * 1e-4])
    assert all(len(c.frames) <= keep for c in host.instance.clips.values())
    for k in range(400):  # frames sent with requests that fail are not kept either
        with pytest.raises(ParamError, match="no Source frame at time 500"):
            render(server, inst, 500.0, [1000.0 + k])
    assert all(len(c.frames) <= keep for c in host.instance.clips.values())
    assert not any(t >= 1000 for t in host.instance.clip("Source").frames)


def test_keyframes_replace_the_curve_are_bounded_and_bad_values_change_nothing(catalog):
    server = serve.Server(catalog)
    inst = server.handle(serve.Message({"op": "create", "effect": ECHO, "width": 4,
                                        "height": 4}))[0]["instance"]
    params = server.hosts[inst].instance.params

    def set_(**fields: Any) -> dict[str, Any]:
        return {"op": "set", "instance": inst, **fields}

    server.handle(serve.Message(set_(keyframes={"decay": [[0, 0.1], [10, 0.9]]})))
    server.handle(serve.Message(set_(keyframes={"decay": [[0, 0.5]]})))  # the whole new curve
    assert params.value("decay", 10) == 0.5
    start = time.monotonic()
    many = [[i, 0.5] for i in range(MAX_KEYFRAMES + 1)]
    assert f"1 to {MAX_KEYFRAMES}" in refusal(server, set_(keyframes={"decay": many}))
    assert time.monotonic() - start < 2
    assert "'decay': 5.0 is outside [0.0, 0.99]" in refusal(
        server, set_(params={"mode": "difference", "decay": 5}))
    assert "parameter 'mode' does not animate" in refusal(
        server, set_(keyframes={"decay": [[0, 0.2]], "mode": [[0, "trails"]]}))
    assert params.value("mode") == "trails" and params.value("decay", 10) == 0.5


# -- the socket server, in this process ----------------------------------------------------------

class Peer:
    """A client on the socket, with a timeout on every read so a test cannot hang."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> dict[str, Any]:
        reply = json.loads(self.reader.readline())
        self.reader.read(reply.get("bytes", 0))
        return reply

    def ask(self, header: dict[str, Any], payload: bytes = b"") -> dict[str, Any]:
        self.send(line(header, payload))
        return self.reply()

    def closed_by_server(self) -> bool:
        """Whether the server hung up (everything it sent before is read and dropped)."""
        try:
            while self.reader.read(1 << 16):
                pass
        except ConnectionResetError:
            pass  # the server closed with our request unread: hung up all the same
        return True

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def start_server(tmp_path: Path, catalog) -> Iterator[Callable[..., tuple[Any, list[str]]]]:
    started: list[tuple[Any, threading.Thread]] = []

    def start(name: str = "s.sock", **opts: Any) -> tuple[Any, list[str]]:
        log: list[str] = []
        server = serve.SocketServer(tmp_path / name, catalog, serve.ServeOptions(**opts),
                                    log=log.append)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return server, log

    yield start
    for server, thread in started:
        server.close()
        thread.join(10)
        assert not thread.is_alive()


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_clients_that_hang_up_stall_or_send_huge_headers_are_dropped_and_others_served(
        start_server, tmp_path: Path, capsys):
    server, log = start_server(io_timeout=0.5)
    path = tmp_path / "s.sock"
    cut_header = Peer(path)
    cut_header.send(b'{"op": "hel')
    cut_header.close()
    cut_payload = Peer(path)
    inst = cut_payload.ask({"op": "create", "effect": ECHO, "width": 8, "height": 8})["instance"]
    cut_payload.send(line({"op": "render", "instance": inst, "time": 0, "bytes": 256}) +
                     b"\0" * 100)
    cut_payload.close()
    huge = Peer(path)
    huge.send(line({"op": "render", "bytes": 1 << 50}))
    assert_one_line(huge.reply(), f"over the limit of {MAX_PAYLOAD} payload bytes")
    assert huge.closed_by_server()
    huge.close()
    long_line = Peer(path)
    long_line.send(b"a" * serve.MAX_HEADER)
    assert_one_line(long_line.reply(), "header line longer than the limit")
    assert long_line.closed_by_server()
    long_line.close()
    stalled = Peer(path)
    stalled.send(b'{"op": "hello", "id":')  # and nothing more
    assert stalled.closed_by_server()  # after io_timeout
    stalled.close()
    late = Peer(path)
    assert late.ask({"op": "hello", "id": 7})["id"] == 7
    late.close()
    assert wait_for(lambda: server.clients == 0)
    text = "\n".join(log)
    for reason in ("stream ended 11 bytes into a header line",
                   "stream ended 100 bytes into a 256-byte payload",
                   "over the limit", "header line longer than the limit",
                   "stalled mid-request for 0.5 s"):
        assert reason in text, (reason, log)
    assert "Traceback" not in capsys.readouterr().err


def test_a_client_that_never_reads_its_replies_is_dropped_and_blocks_no_one(start_server,
                                                                           tmp_path: Path):
    server, log = start_server(io_timeout=0.5)
    path = tmp_path / "s.sock"
    deaf = Peer(path)
    side = 1024  # a 4 MiB reply: far more than the socket buffers hold
    inst = deaf.ask({"op": "create", "effect": ECHO, "width": side, "height": side})["instance"]
    deaf.send(line({"op": "render", "instance": inst, "time": 0},
                   b"\x80" * (side * side * 4)))
    other = Peer(path)
    assert other.ask({"op": "hello", "id": 1})["ok"]  # served while the deaf one is stuck
    assert wait_for(lambda: any("did not read its reply for 0.5 s" in m for m in log)), log
    assert server.clients == 1
    assert deaf.closed_by_server()
    assert other.ask({"op": "hello", "id": 2})["ok"]
    other.close()
    deaf.close()


def test_an_idle_client_does_not_block_others_and_yields_its_slot_when_one_waits(
        start_server, tmp_path: Path):
    server, log = start_server("a.sock", max_clients=2, idle_timeout=30)
    idle, busy = Peer(tmp_path / "a.sock"), Peer(tmp_path / "a.sock")
    assert idle.ask({"op": "hello"})["ok"]
    assert busy.ask({"op": "hello"})["ok"]  # served while the first one sits idle
    turned_away = Peer(tmp_path / "a.sock")  # both slots taken, neither idle for 30 s
    assert_one_line(turned_away.reply(), "server busy: 2 clients are connected")
    assert turned_away.closed_by_server()
    assert idle.ask({"op": "hello"})["ok"] and server.clients == 2

    server, log = start_server("b.sock", max_clients=1, idle_timeout=0.2)
    sleeper = Peer(tmp_path / "b.sock")
    made = sleeper.ask({"op": "create", "effect": ECHO, "width": 4, "height": 4})
    assert made["ok"]
    time.sleep(0.4)
    newcomer = Peer(tmp_path / "b.sock")
    assert newcomer.ask({"op": "hello", "id": 5})["id"] == 5
    assert sleeper.closed_by_server()
    assert wait_for(lambda: any("idle for" in m and "another client waited" in m
                                for m in log)), log
    for peer in (idle, busy, turned_away, sleeper, newcomer):
        peer.close()


def test_a_stale_socket_file_is_replaced_a_live_one_and_a_plain_file_are_refused(
        start_server, tmp_path: Path, catalog):
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # what a SIGKILLed server leaves: a socket nobody listens on
    assert path.is_socket()
    server, _ = start_server()
    peer = Peer(path)
    assert peer.ask({"op": "hello"})["ok"]
    with pytest.raises(OutputError, match="exists and a server is listening on it"):
        serve.SocketServer(path, catalog)
    assert peer.ask({"op": "hello"})["ok"]  # the live server is untouched
    peer.close()
    plain = tmp_path / "notes.sock"
    plain.write_text("a user's file")
    with pytest.raises(OutputError, match="exists and is not a socket"):
        serve.SocketServer(plain, catalog)
    assert plain.read_text() == "a user's file"
    server.close()
    assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.sock"]


# -- the real process ------------------------------------------------------------------------------

@contextlib.contextmanager
def server_process(path: Path) -> Iterator[subprocess.Popen]:
    """`vstpipe serve --socket PATH` as a real process, killed if a test leaves it running."""
    with subprocess.Popen([sys.executable, "-m", "vstpipe", "serve", "--socket", str(path)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def hello(path: Path, seconds: float = 10.0) -> bool:
    """Whether a fresh client gets its hello answered within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            peer = Peer(path, timeout=max(0.1, deadline - time.monotonic()))
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.1)  # not listening yet
            continue
        try:
            return peer.ask({"op": "hello", "id": 1}).get("id") == 1
        except (TimeoutError, ConnectionError, json.JSONDecodeError):
            return False
        finally:
            peer.close()
    return False


def test_a_server_process_survives_hostile_clients_while_one_sits_idle(tmp_path: Path):
    path = tmp_path / "s.sock"
    with server_process(path) as proc:
        assert hello(path, 60)
        idle = Peer(path)  # connected the whole time, never says a word
        hostile = [
            b"[" * 50_000 + b"]" * 50_000 + b"\n",
            b'{"op": "hel\xfflo"}\n',
            line({"op": "hello", "bytes": 1 << 45}),
            line({"op": "hello", "bytes": "12"}),
            b'{"op": "create", "effect": "echo", "width": 10000000, "height": 10000000}\n',
            b'{"op": "hel',
            line({"op": "create", "effect": "echo", "width": 8, "height": 8})
            + line({"op": "render", "instance": 1, "time": 0, "bytes": 256}) + b"\0" * 9,
        ]
        for i, data in enumerate(hostile):
            peer = Peer(path)
            try:
                peer.send(data)
            except OSError as exc:
                pytest.fail(f"hostile client {i} could not send its request: {exc!r}")
            finally:
                peer.close()
            assert hello(path), f"no answer after hostile client {i}"
        idle.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        assert "Traceback" not in proc.stderr.read().decode()
        assert not path.exists()


def test_a_stale_socket_from_a_killed_server_does_not_block_a_restart(tmp_path: Path):
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # the file a SIGKILLed server leaves behind
    with server_process(path) as proc:
        answered = hello(path, 60)
        proc.kill()
        assert answered, proc.stderr.read().decode()


def test_sigterm_removes_the_socket(tmp_path: Path):
    path = tmp_path / "s.sock"
    with server_process(path) as proc:
        assert hello(path, 60)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        err = proc.stderr.read().decode()
    assert code > 0, (code, err)  # unwound and exited; not killed by the signal
    assert not path.exists()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert os.listdir(tmp_path) == []
