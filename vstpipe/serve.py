"""`vstpipe serve`: the effects behind a frame-server protocol, for native plugin bridges.

Framing, both ways: one line of UTF-8 JSON (the header, ending in a newline), then exactly
``header["bytes"]`` bytes of payload (none when absent). Every request carries ``op`` and may
carry ``id``, which the reply echoes. Replies have ``ok``; a failed request gets
``{"ok": false, "error": "<one line>", "type": "<error class>"}`` and the server carries on.

Requests:

- ``hello`` -> ``protocol``, ``version``, ``effects`` (identifiers), ``broken`` (plugins that
  did not load, with why)
- ``describe`` effect, context -> ``descriptor`` (as `vstpipe ofx describe`)
- ``create`` effect, context, width, height, depth, frame_rate, frame_range -> ``instance``
- ``set`` instance, params {name: value}, keyframes {name: [[time, value], ...]}
- ``frames_needed`` instance, time -> ``frames`` {clip: [[first, last], ...]}
- ``regions_of_interest`` instance, time, window -> ``regions`` {clip: [x1, y1, x2, y2]}
- ``begin`` / ``end`` instance, frame_range: begin and end sequence render
- ``render`` instance, time, window, images [{clip: "Source", time}], payload: the Source
  frames, whole frames one after another, each (height, width, 4) RGBA at the instance's
  depth, little-endian, bottom row first -> payload: the window's pixels in the same layout,
  ``window`` and ``depth`` in the reply header. Earlier frames the effect asks for may be sent
  in the same request; the server also keeps the frames it was sent and its own outputs.
- ``destroy`` instance; ``quit``

See plugins/README.md for how a native OpenFX bridge maps its actions onto these requests.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import __version__, effects, ofx
from .errors import EffectError, OutputError, ParamError, VstpipeError
from .ofx_host import Host, HostOptions

PROTOCOL = 1
MAX_HEADER = 1 << 20  # a header line longer than this is not this protocol


@dataclass(frozen=True)
class Message:
    header: dict[str, Any]
    payload: bytes = b""


def read_message(stream: IO[bytes]) -> Message | None:
    """The next message, or None at a clean end of stream. EffectError on broken framing."""
    line = stream.readline(MAX_HEADER)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise EffectError(f"header line longer than {MAX_HEADER} bytes or cut off")
    try:
        header = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ParamError(f"header is not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(header, dict):
        raise ParamError("header must be a JSON object")
    size = header.get("bytes", 0)
    if not isinstance(size, int) or size < 0:
        raise ParamError(f"'bytes' must be a count of payload bytes, got {size!r}")
    payload = stream.read(size) if size else b""
    if len(payload) != size:
        raise EffectError(f"stream ended {len(payload)} bytes into a {size}-byte payload")
    return Message(header, payload)


def write_message(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    if payload:
        header = {**header, "bytes": len(payload)}
    stream.write(json.dumps(header).encode() + b"\n")
    if payload:
        stream.write(payload)
    stream.flush()


def _field(header: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = header.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ParamError(f"'{header.get('op')}' needs '{name}' of type "
                         f"{getattr(kind, '__name__', kind)}, got {value!r}")
    return value


class Server:
    """Instances by number; one request in, one reply out."""

    def __init__(self, catalog: effects.Catalog) -> None:
        self.catalog = catalog
        self.hosts: dict[int, Host] = {}
        self._next = 1
        self.ops: dict[str, Callable[[dict[str, Any], bytes], tuple[dict[str, Any], bytes]]] = {
            "hello": self._hello, "describe": self._describe, "create": self._create,
            "set": self._set, "frames_needed": self._frames_needed,
            "regions_of_interest": self._regions, "begin": self._begin, "end": self._end,
            "render": self._render, "destroy": self._destroy}

    def handle(self, message: Message) -> tuple[dict[str, Any], bytes]:
        op = message.header.get("op")
        if op not in self.ops:
            raise ParamError(f"unknown op {op!r}; use {', '.join([*self.ops, 'quit'])}")
        reply, payload = self.ops[op](message.header, message.payload)
        return {"ok": True, **reply}, payload

    def _host(self, header: dict[str, Any]) -> Host:
        number = _field(header, "instance", int)
        if number not in self.hosts:
            raise ParamError(f"no instance {number}; create one first")
        return self.hosts[number]

    def _hello(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], bytes]:
        return {"protocol": PROTOCOL, "version": __version__,
                "effects": list(self.catalog.effects),
                "broken": [{"plugin": f.plugin, "error": f.message}
                           for f in self.catalog.failures]}, b""

    def _describe(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], bytes]:
        context = header.get("context", "filter")
        effect = self.catalog.get(_field(header, "effect", str))
        return {"descriptor": ofx.describe(effect, context).to_json(context)}, b""

    def _create(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], bytes]:
        effect = self.catalog.get(_field(header, "effect", str))
        context = header.get("context", "filter")
        desc = ofx.describe(effect, context)
        depth = header.get("depth", "byte")
        if depth not in desc.depths:
            raise ParamError(f"depth {depth!r}: {effect.identifier} supports "
                             f"{', '.join(desc.depths)}")
        size = (_field(header, "width", int), _field(header, "height", int))
        if min(size) < 1:
            raise ParamError(f"width and height must be positive, got {size}")
        first, last = header.get("frame_range", [0, float("inf")])
        host = Host(effect, ofx.ParamSet(desc.params), HostOptions(context=context), size,
                    float(header.get("frame_rate", 0)), (float(first), float(last)), depth)
        number, self._next = self._next, self._next + 1
        self.hosts[number] = host
        return {"instance": number, "depth": depth}, b""

    def _set(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], bytes]:
        host = self._host(header)
        params = host.instance.params
        for name, value in dict(header.get("params", {})).items():
            params.set(name, value)
            host.effect.instance_changed(name, 0.0)
        for name, keys in dict(header.get("keyframes", {})).items():
            for time, value in keys:
                params.set_keyframe(name, float(time), value)
            host.effect.instance_changed(name, 0.0)
        return {}, b""

    def _frames_needed(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], bytes]:
        host = self._host(header)
        needed = host.effect.frames_needed(float(_field(header, "time", (int, float))))
        return {"frames": {clip: [list(r) for r in ranges] for clip, ranges in
                           dict(needed).items()}}, b""

    def _regions(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], bytes]:
        host = self._host(header)
        window = ofx.Rect.parse(header.get("window"), "window")
        rois = host.effect.regions_of_interest(float(_field(header, "time", (int, float))),
                                               window)
        return {"regions": {clip: rect.as_list() for clip, rect in dict(rois).items()}}, b""

    def _begin(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], bytes]:
        host = self._host(header)
        if "frame_range" in header:
            first, last = header["frame_range"]
            host.sequence = ofx.SequenceArgs((float(first), float(last)))
        host.begin()
        return {}, b""

    def _end(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], bytes]:
        self._host(header).end()
        return {}, b""

    def _destroy(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], bytes]:
        host = self._host(header)
        del self.hosts[header["instance"]]
        host.destroy()
        return {}, b""

    def _render(self, header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        host = self._host(header)
        time = float(_field(header, "time", (int, float)))
        rod = host.rod
        window = ofx.Rect.parse(header.get("window", rod.as_list()), "window")
        if not rod.contains(window) or window.empty:
            raise ParamError(f"window {window.as_list()} is empty or outside the frame "
                             f"{rod.as_list()}")
        dtype = np.dtype(ofx.DEPTH_DTYPES[host.depth]).newbyteorder("<")
        frame_bytes = rod.width * rod.height * 4 * dtype.itemsize
        images = list(header.get("images", [{"clip": ofx.SOURCE, "time": time}]))
        if len(payload) != frame_bytes * len(images):
            raise ParamError(f"payload has {len(payload)} bytes; {len(images)} frame(s) of "
                             f"{rod.width}x{rod.height} RGBA {host.depth} need "
                             f"{frame_bytes * len(images)}")
        for i, item in enumerate(images):
            if item.get("clip", ofx.SOURCE) != ofx.SOURCE:
                raise ParamError("only Source frames are sent; the server keeps the outputs")
            pixels = np.frombuffer(payload, dtype, rod.width * rod.height * 4, i * frame_bytes)
            pixels = pixels.astype(ofx.DEPTH_DTYPES[host.depth]).reshape(rod.height,
                                                                         rod.width, 4)
            host.add_source(float(item.get("time", time)), ofx.Image(pixels, rod, host.depth))
        if host.instance.clip(ofx.SOURCE).frames.get(time) is None:
            raise ParamError(f"no Source frame at time {time:g}; send it in 'images'")
        out = host.render(time, window)
        data = np.ascontiguousarray(out.view(window)).astype(dtype, copy=False).tobytes()
        return {"window": window.as_list(), "depth": host.depth}, data


def serve(stdin: IO[bytes], stdout: IO[bytes], catalog: effects.Catalog | None = None) -> int:
    """Answer requests until ``quit`` or the end of stdin; returns the exit status."""
    server = Server(catalog or effects.load_catalog())
    try:
        while True:
            try:
                message = read_message(stdin)
            except VstpipeError as exc:
                write_message(stdout, {"ok": False, "error": str(exc), "type":
                                       type(exc).__name__})
                if isinstance(exc, EffectError):
                    return 1  # the framing is lost; nothing after this can be trusted
                continue
            if message is None or message.header.get("op") == "quit":
                return 0
            ident = {"id": message.header["id"]} if "id" in message.header else {}
            try:
                reply, payload = server.handle(message)
            except VstpipeError as exc:
                reply, payload = {"ok": False, "error": str(exc),
                                  "type": type(exc).__name__}, b""
            except (TypeError, ValueError, KeyError) as exc:  # a malformed request field
                reply, payload = {"ok": False, "error": f"malformed request: {exc}",
                                  "type": "ParamError"}, b""
            write_message(stdout, {**ident, **reply}, payload)
    except BrokenPipeError:
        return 0  # the client went away: nothing to answer
    finally:
        for host in server.hosts.values():
            host.destroy()


def serve_stdio() -> int:
    """Serve on this process's stdin and stdout. Anything an effect prints goes to stderr,
    so stdout carries nothing but replies."""
    replies = sys.stdout.buffer
    sys.stdout = sys.stderr
    return serve(sys.stdin.buffer, replies)


def serve_socket(path: Path) -> int:
    """Listen on a UNIX socket at ``path``; one client at a time, each with its own instances,
    until interrupted. The socket file is removed on the way out."""
    if path.exists():
        raise OutputError(f"{path} exists; remove it or choose another --socket path")
    catalog = effects.load_catalog()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        try:
            listener.listen(1)
            while True:
                conn, _ = listener.accept()
                with conn, conn.makefile("rb") as reader, conn.makefile("wb") as writer:
                    serve(reader, writer, catalog)
        finally:
            path.unlink(missing_ok=True)
