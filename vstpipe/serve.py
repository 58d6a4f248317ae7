"""`vstpipe serve`: the effects behind a frame-server protocol, for native plugin bridges.

Framing, both ways: one line of UTF-8 JSON (the header, ending in a newline), then exactly
``header["bytes"]`` bytes of payload (none when absent). Every request carries ``op`` and may
carry ``id`` (a number or a string), which the reply echoes. Replies have ``ok``; a failed
request gets ``{"ok": false, "error": "<one line>", "type": "<error class>"}`` and the server
carries on.

Requests:

- ``hello`` -> ``protocol``, ``version``, ``effects`` (identifiers), ``broken`` (plugins that
  did not load, with why)
- ``describe`` effect, context -> ``descriptor`` (as `vstpipe ofx describe`)
- ``create`` effect, context, width, height, depth, frame_rate, frame_range -> ``instance``
- ``set`` instance, params {name: value}, keyframes {name: [[time, value], ...]}; a keyframe
  list replaces that parameter's animation (the host sends the whole curve when it changes)
- ``frames_needed`` instance, time -> ``frames`` {clip: [[first, last], ...]}
- ``regions_of_interest`` instance, time, window -> ``regions`` {clip: [x1, y1, x2, y2]}
- ``begin`` / ``end`` instance, frame_range: begin and end sequence render
- ``render`` instance, time, window, images [{clip: "Source", time}], payload: the Source
  frames, whole frames one after another, each (height, width, 4) RGBA at the instance's
  depth, little-endian, bottom row first -> payload: the window's pixels in the same layout,
  ``window`` and ``depth`` in the reply header. Earlier frames the effect asks for may be sent
  in the same request; the server keeps, per clip, the frames that the effect's
  ``frames_needed`` names at the last render time (its own outputs included), so memory stays
  bounded however a client scrubs.
- ``destroy`` instance; ``quit``

Limits, all checked before anything is allocated or read: a header line of at most
``MAX_HEADER`` bytes, nested at most ``MAX_DEPTH`` deep, with finite numbers of at most
``MAX_DIGITS`` digits; a payload of at most ``MAX_PAYLOAD`` bytes, and exactly the size the
request needs (a render's frames), else it is skipped unread and the request refused; frames
of at most ``MAX_SIDE`` pixels a side and ``MAX_PIXELS`` in all; ``MAX_INSTANCES`` instances
and ``MAX_KEYFRAMES`` keyframes per parameter. A header that breaks the framing (a line over
the limit or cut off, a ``bytes`` that is not a count within the limit, a payload cut off)
gets an error reply, and then the session ends: what follows cannot be trusted.

Connections. On stdin/stdout the parent process is the one client and owns the pace: no
timeouts. On a UNIX socket each client gets its own thread and its own instances, up to
``ServeOptions.max_clients`` at once. A client may stay idle between requests, keeping its
instances, as long as no one needs its slot: when every slot is taken, a new client takes the
slot of the client idle longest, once that one has been idle ``idle_timeout`` seconds (or has
been sending one request for ``io_timeout`` seconds); otherwise the new client is told the
server is busy. A client that stalls ``io_timeout`` seconds in the middle of a request, or does
not read a reply for that long, is dropped; so is one that disconnects mid-request. Rendering
has no time limit. Dropped clients get one line on stderr, and the server goes on serving.

See plugins/README.md for how a native OpenFX bridge maps its actions onto these requests.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import socket
import stat
import sys
import threading
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

import numpy as np

from . import __version__, effects, ofx
from .errors import EffectError, OptionError, OutputError, ParamError, VstpipeError
from .ofx_host import Host, HostOptions

PROTOCOL = 1
MAX_HEADER = 1 << 20  # bytes in a header line, newline included
MAX_DEPTH = 32  # arrays and objects nested in a header
MAX_DIGITS = 20  # digits of an integer in a header (a 64-bit id fits)
MAX_PAYLOAD = 1 << 31  # bytes after one header: two float frames at MAX_PIXELS
MAX_SIDE = 16384  # pixels per side of an instance's frames
MAX_PIXELS = 1 << 26  # pixels per frame: 8192 x 8192, or 16384 x 4096
MAX_INSTANCES = 16  # instances one client holds at once
MAX_KEYFRAMES = 4096  # keyframes per parameter (setting them is quadratic in ofx.ParamSet)
_CHUNK = 1 << 20  # payload bytes skipped at a time
_FIRST_READ = 1 << 24  # bytes a payload's buffer starts with; it doubles as more arrives
_POLL = 0.25  # seconds between checks for stop() while waiting for clients
Payload = bytes | bytearray | memoryview  # a reply's bytes; a render's is a view of its image
_SHOW = reprlib.Repr()  # client values in messages: bounded in length and depth
_SHOW.maxstring = _SHOW.maxother = 40


class FramingError(ParamError):
    """A header after which the stream cannot be trusted (a line over the limit or cut off, a
    ``bytes`` that is not a count within the limit, a payload cut off): replied to, then the
    session ends."""


class ServerBusy(VstpipeError):
    """Every client slot of a socket server is taken by a client that is not idle."""


@dataclass(frozen=True)
class ServeOptions:
    """How a socket server shares itself among clients."""

    max_clients: int = 8  # clients served at once
    idle_timeout: float = 60.0  # seconds idle before a client's slot may go to a waiting one
    io_timeout: float = 30.0  # seconds a request may stall mid-message or a reply go unread

    def __post_init__(self) -> None:
        if self.max_clients < 1:
            raise OptionError(f"max_clients {self.max_clients}: serve at least 1 client")
        for name in ("idle_timeout", "io_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise OptionError(f"{name} {value}: use a positive number of seconds")


@dataclass(frozen=True)
class Message:
    header: dict[str, Any]
    payload: bytes | bytearray = b""
    refused: VstpipeError | None = None  # why the payload was skipped unread


# -- framing -----------------------------------------------------------------------------------

def _refuse_constant(name: str) -> float:
    raise ParamError(f"header: {name} is not a number this protocol accepts; use finite numbers")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ParamError(f"header: {_SHOW.repr(text)} is out of range; use finite numbers")
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ParamError(f"header: an integer of {len(text.lstrip('-'))} digits; at most "
                         f"{MAX_DIGITS}")
    return int(text)


def _depth_over(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest deeper than ``limit`` (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                  else item))
    return False


def parse_header(line: bytes) -> dict[str, Any]:
    """One header line -> its JSON object; ParamError names what is wrong with it."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParamError(f"header is not UTF-8 (byte 0x{line[exc.start]:02x} at offset "
                         f"{exc.start})") from None
    try:
        header = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite,
                            parse_int=_integer)
    except RecursionError:
        raise ParamError(f"header nests deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise ParamError(f"header is not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(header, dict):
        raise ParamError(f"header must be a JSON object, got {type(header).__name__} "
                         f"{_SHOW.repr(header)}")
    if _depth_over(header, MAX_DEPTH):
        raise ParamError(f"header nests deeper than {MAX_DEPTH} levels")
    return header


def payload_size(header: dict[str, Any]) -> int:
    """The header's ``bytes``; FramingError unless a count from 0 to MAX_PAYLOAD."""
    size = header.get("bytes", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise FramingError(f"'bytes' must be a whole number of payload bytes from 0 to "
                           f"{MAX_PAYLOAD}, got {_SHOW.repr(size)}; closing the session")
    if size > MAX_PAYLOAD:
        raise FramingError(f"'bytes' {size} is over the limit of {MAX_PAYLOAD} payload bytes "
                           f"per message; closing the session")
    return size


def _read_exact(stream: IO[bytes], size: int) -> bytearray:
    """``size`` bytes, taken as they arrive: memory grows with what was sent, not declared
    (doubling, so a frame is read straight into its buffer and a large one grows in a few
    steps, which the allocator does without copying)."""
    data = bytearray(min(size, _FIRST_READ))
    got = 0
    while got < size:
        if got == len(data):
            data.extend(bytes(min(len(data), size - len(data))))
        with memoryview(data) as view:
            count = stream.readinto(view[got:])
        if not count:
            raise FramingError(f"stream ended {got} bytes into a {size}-byte payload")
        got += count
    return data


def _skip(stream: IO[bytes], size: int) -> None:
    """Read past ``size`` payload bytes without keeping them, so the next header is found."""
    left = size
    while left:
        chunk = stream.read(min(_CHUNK, left))
        if not chunk:
            raise FramingError(f"stream ended {size - left} bytes into a {size}-byte payload")
        left -= len(chunk)


def read_message(stream: IO[bytes],
                 check: Callable[[dict[str, Any], int], None] | None = None) -> Message | None:
    """The next message, or None at a clean end of stream. ``check(header, size)`` may refuse
    the payload before it is read: it is then skipped, and the message carries the refusal.
    ParamError for a bad header (the stream goes on), FramingError when it cannot go on."""
    line = stream.readline(MAX_HEADER)
    if not line:
        return None
    if not line.endswith(b"\n"):
        if len(line) >= MAX_HEADER:
            raise FramingError(f"header line longer than the limit of {MAX_HEADER} bytes; "
                               f"closing the session")
        raise FramingError(f"stream ended {len(line)} bytes into a header line")
    header = parse_header(line)
    size = payload_size(header)
    if check is not None:
        try:
            check(header, size)
        except VstpipeError as exc:
            _skip(stream, size)
            return Message(header, b"", exc)
    return Message(header, _read_exact(stream, size))


def write_message(stream: IO[bytes], header: dict[str, Any],
                  payload: bytes | bytearray = b"") -> None:
    if payload:
        header = {**header, "bytes": len(payload)}
    stream.write(json.dumps(header).encode() + b"\n")
    if payload:
        stream.write(payload)
    stream.flush()


def _failure(exc: Exception, kind: str | None = None) -> dict[str, Any]:
    """The reply for a failed request: one line, its middle cut when a client's value made it
    long (the start names the field, the end what is valid)."""
    text = " ".join(str(exc).split())
    if len(text) > 400:
        text = f"{text[:200]} ... {text[-200:]}"
    return {"ok": False, "error": text, "type": kind or type(exc).__name__}


# -- request fields ----------------------------------------------------------------------------

_MISSING = object()


def _field(header: dict[str, Any], name: str, kind: type | tuple[type, ...],
           default: Any = _MISSING) -> Any:
    value = header.get(name, default)
    if value is _MISSING or not isinstance(value, kind) or \
            (isinstance(value, bool) and kind is not bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        raise ParamError(f"'{header.get('op')}' needs '{name}' of type "
                         f"{' or '.join(k.__name__ for k in kinds)}, got {_SHOW.repr(value)}"
                         if value is not _MISSING else
                         f"'{header.get('op')}' needs '{name}'")
    return value


def _number(value: Any, what: str) -> float:
    """A finite float from a JSON number; ParamError names ``what``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise ParamError(f"{what}: expected a finite number, got {_SHOW.repr(value)}")


def _time(header: dict[str, Any]) -> float:
    return _number(_field(header, "time", (int, float)), f"'{header.get('op')}' 'time'")


def _frame_range(header: dict[str, Any], default: tuple[float, float]) -> tuple[float, float]:
    value = header.get("frame_range", _MISSING)
    if value is _MISSING:
        return default
    if not (isinstance(value, list) and len(value) == 2):
        raise ParamError(f"'frame_range': expected [first, last], got {_SHOW.repr(value)}")
    first, last = (_number(v, "'frame_range'") for v in value)
    if last < first:
        raise ParamError(f"'frame_range' {value}: last must not be before first")
    return first, last


def _rect(header: dict[str, Any], name: str, default: ofx.Rect) -> ofx.Rect:
    value = header.get(name, _MISSING)
    if value is _MISSING:
        return default
    if not (isinstance(value, list) and len(value) == 4 and
            all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ParamError(f"'{name}': expected four integers [x1, y1, x2, y2], got "
                         f"{_SHOW.repr(value)}")
    return ofx.Rect.parse(value, f"'{name}'")


def _frame_size(header: dict[str, Any]) -> tuple[int, int]:
    """(width, height) of a `create`, within MAX_SIDE and MAX_PIXELS before any allocation."""
    size = (_field(header, "width", int), _field(header, "height", int))
    if not all(1 <= side <= MAX_SIDE for side in size):
        raise ParamError(f"width and height must be 1 to {MAX_SIDE} pixels, got "
                         f"{size[0]}x{size[1]}")
    if size[0] * size[1] > MAX_PIXELS:
        raise ParamError(f"{size[0]}x{size[1]} is {size[0] * size[1]} pixels; the limit is "
                         f"{MAX_PIXELS} per frame")
    return size


def _definition(params: ofx.ParamSet, name: str) -> ofx.ParamDef:
    definition = params.defs.get(name)
    if definition is None:
        params.value(name)  # raises the error that lists this effect's parameters
    return definition


def _value(params: ofx.ParamSet, name: str, value: Any) -> Any:
    """A parameter's constant value, checked before anything is set."""
    return _definition(params, name).check(value)


def _keyframes(params: ofx.ParamSet, name: str, keys: Any) -> list[tuple[float, Any]]:
    """A parameter's keyframes from [[time, value], ...], checked before anything is set."""
    definition = _definition(params, name)
    if not definition.animatable:
        raise ParamError(f"parameter '{name}' does not animate; set one value in 'params'")
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYFRAMES:
        raise ParamError(f"'keyframes' '{name}': expected a list of 1 to {MAX_KEYFRAMES} "
                         f"[time, value] pairs, got {_SHOW.repr(keys)}")
    out = []
    for key in keys:
        if not (isinstance(key, list) and len(key) == 2):
            raise ParamError(f"'keyframes' '{name}': expected [time, value], got "
                             f"{_SHOW.repr(key)}")
        out.append((_number(key[0], f"'keyframes' '{name}' time"), definition.check(key[1])))
    return out


def _span(needed: Any, time: float) -> tuple[float, float]:
    """The times an effect's frames_needed answer names, ``time`` included: (first, last)."""
    times = [float(t) for ranges in dict(needed).values() for pair in ranges for t in pair]
    return min([time, *times]), max([time, *times])


def _trim(host: Host, time: float, span: tuple[float, float]) -> None:
    """Forget the frames later renders cannot ask for: outside ``span`` (so scrubbing backwards
    does not pile up the frames after it), and past the 2 * history + 1 nearest ``time`` (so
    requests at fractional times inside the span do not either)."""
    first, last = span
    keep = 2 * host.opts.history + 1
    for clip in host.instance.clips.values():
        inside = sorted((t for t in clip.frames if first <= t <= last),
                        key=lambda t: abs(t - time))
        kept = set(inside[:keep])
        for t in [t for t in clip.frames if t not in kept]:
            del clip.frames[t]


# -- requests ----------------------------------------------------------------------------------

Handler = Callable[[dict[str, Any], bytes], tuple[dict[str, Any], Payload]]


@dataclass(frozen=True)
class _RenderRequest:
    host: Host
    time: float
    window: ofx.Rect
    times: tuple[float, ...]  # of the Source frames in the payload, in order
    dtype: np.dtype  # little-endian samples of the instance's depth
    frame_bytes: int


class Server:
    """Instances by number; one request in, one reply out."""

    def __init__(self, catalog: effects.Catalog) -> None:
        self.catalog = catalog
        self.hosts: dict[int, Host] = {}
        self._next = 1
        self.ops: dict[str, Handler] = {
            "hello": self._hello, "describe": self._describe, "create": self._create,
            "set": self._set, "frames_needed": self._frames_needed,
            "regions_of_interest": self._regions, "begin": self._begin, "end": self._end,
            "render": self._render, "destroy": self._destroy}

    def answer(self, message: Message) -> tuple[dict[str, Any], Payload]:
        """The reply to one request, a failure reply when it cannot be carried out."""
        ident = message.header.get("id")
        if "id" in message.header and (not isinstance(ident, int | str) or
                                       isinstance(ident, bool)):
            return _failure(ParamError(f"'id' must be a number or a string, got "
                                       f"{_SHOW.repr(ident)}")), b""
        echo = {"id": ident} if "id" in message.header else {}
        try:
            if message.refused is not None:
                raise message.refused
            reply, payload = self.handle(message)
        except VstpipeError as exc:
            reply, payload = _failure(exc), b""
        except (TypeError, ValueError, KeyError) as exc:  # a malformed request field
            reply, payload = _failure(exc, "ParamError"), b""
            reply["error"] = f"malformed request: {reply['error']}"
        return {**echo, **reply}, payload

    def handle(self, message: Message) -> tuple[dict[str, Any], Payload]:
        reply, payload = self.ops[self._op(message.header)](message.header, message.payload)
        return {"ok": True, **reply}, payload

    def _op(self, header: dict[str, Any]) -> str:
        op = header.get("op")
        if not isinstance(op, str) or op not in self.ops:
            raise ParamError(f"unknown op {_SHOW.repr(op)}; use "
                             f"{', '.join([*self.ops, 'quit'])}")
        return op

    def check_payload(self, header: dict[str, Any], size: int) -> None:
        """Refuse a payload the request cannot use, before it is read."""
        if size and header.get("op") != "quit":
            self._op(header)
        if header.get("op") == "render":
            request = self._render_request(header)
            need = request.frame_bytes * len(request.times)
            if size != need:
                rod = request.host.rod
                raise ParamError(f"payload has {size} bytes; {len(request.times)} frame(s) of "
                                 f"{rod.width}x{rod.height} RGBA {request.host.depth} need "
                                 f"{need}")
        elif size:
            raise ParamError(f"{_SHOW.repr(header.get('op'))} takes no payload, got "
                             f"{size} bytes")

    def close(self) -> None:
        """Destroy every instance; the first failure is raised after all were tried."""
        hosts, self.hosts = list(self.hosts.values()), {}
        failed: EffectError | None = None
        for host in hosts:
            try:
                host.destroy()
            except EffectError as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

    def _host(self, header: dict[str, Any]) -> Host:
        number = _field(header, "instance", int)
        if number not in self.hosts:
            raise ParamError(f"no instance {number}; create one first")
        return self.hosts[number]

    def _hello(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], Payload]:
        return {"protocol": PROTOCOL, "version": __version__,
                "effects": list(self.catalog.effects),
                "broken": [{"plugin": f.plugin, "error": f.message}
                           for f in self.catalog.failures]}, b""

    def _describe(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], Payload]:
        context = _field(header, "context", str, "filter")
        effect = self.catalog.get(_field(header, "effect", str))
        return {"descriptor": ofx.describe(effect, context).to_json(context)}, b""

    def _create(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], Payload]:
        if len(self.hosts) >= MAX_INSTANCES:
            raise ParamError(f"this client holds {len(self.hosts)} instances, the limit; "
                             f"destroy one first")
        effect = self.catalog.get(_field(header, "effect", str))
        context = _field(header, "context", str, "filter")
        desc = ofx.describe(effect, context)
        depth = _field(header, "depth", str, "byte")
        if depth not in desc.depths:
            raise ParamError(f"depth {depth!r}: {effect.identifier} supports "
                             f"{', '.join(desc.depths)}")
        size = _frame_size(header)
        rate = _number(header.get("frame_rate", 0), "'frame_rate'")
        if rate < 0:
            raise ParamError(f"'frame_rate' {rate:g}: use frames per second, or 0 when unknown")
        host = Host(effect, ofx.ParamSet(desc.params), HostOptions(context=context), size,
                    rate, _frame_range(header, (0.0, math.inf)), depth)
        number, self._next = self._next, self._next + 1
        self.hosts[number] = host
        return {"instance": number, "depth": depth}, b""

    def _set(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], Payload]:
        host = self._host(header)
        params = host.instance.params
        values = {name: _value(params, name, value) for name, value in
                  _field(header, "params", dict, {}).items()}
        animations = {name: _keyframes(params, name, keys) for name, keys in
                      _field(header, "keyframes", dict, {}).items()}
        # Everything was checked above, so a bad value changes nothing.
        for name, value in values.items():
            params.set(name, value)
            self._changed(host, name)
        for name, keys in animations.items():
            params.set(name, keys[0][1])  # drops the old curve: the list is the whole curve
            for time, value in keys:
                params.set_keyframe(name, time, value)
            self._changed(host, name)
        return {}, b""

    @staticmethod
    def _changed(host: Host, name: str) -> None:
        # Through the host's guard, so a failing effect is one line naming it.
        host._call(f"instance changed ({name})", lambda: host.effect.instance_changed(name, 0.0))

    def _frames_needed(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], Payload]:
        host, time = self._host(header), _time(header)
        needed = host._call("get frames needed", lambda: {
            clip: [list(r) for r in ranges]
            for clip, ranges in dict(host.effect.frames_needed(time)).items()})
        return {"frames": needed}, b""

    def _regions(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], Payload]:
        host, time = self._host(header), _time(header)
        window = _rect(header, "window", host.rod)
        rois = host._call("get regions of interest", lambda: {
            clip: rect.as_list()
            for clip, rect in dict(host.effect.regions_of_interest(time, window)).items()})
        return {"regions": rois}, b""

    def _begin(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], Payload]:
        host = self._host(header)
        if "frame_range" in header:
            host.sequence = ofx.SequenceArgs(_frame_range(header, (0.0, math.inf)))
        host.begin()
        return {}, b""

    def _end(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], Payload]:
        self._host(header).end()
        return {}, b""

    def _destroy(self, header: dict[str, Any], _: bytes) -> tuple[dict[str, Any], Payload]:
        host = self._host(header)
        del self.hosts[header["instance"]]
        host.destroy()
        return {}, b""

    def _render_request(self, header: dict[str, Any]) -> _RenderRequest:
        host, time = self._host(header), _time(header)
        window = _rect(header, "window", host.rod)
        if not host.rod.contains(window) or window.empty:
            raise ParamError(f"window {window.as_list()} is empty or outside the frame "
                             f"{host.rod.as_list()}")
        most = host.opts.history + 1
        images = _field(header, "images", list, [{"clip": ofx.SOURCE, "time": time}])
        if len(images) > most:
            raise ParamError(f"'images' lists {len(images)} frames; at most {most} per render")
        times = []
        for item in images:
            if not isinstance(item, dict):
                raise ParamError(f"'images': expected {{\"clip\": \"Source\", \"time\": T}}, "
                                 f"got {_SHOW.repr(item)}")
            if item.get("clip", ofx.SOURCE) != ofx.SOURCE:
                raise ParamError("only Source frames are sent; the server keeps the outputs")
            times.append(_number(item.get("time", time), "'images' time"))
        dtype = np.dtype(ofx.DEPTH_DTYPES[host.depth]).newbyteorder("<")
        frame_bytes = host.rod.width * host.rod.height * 4 * dtype.itemsize
        return _RenderRequest(host, time, window, tuple(times), dtype, frame_bytes)

    def _render(self, header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], Payload]:
        request = self._render_request(header)
        self.check_payload(header, len(payload))
        host, time, rod = request.host, request.time, request.host.rod
        span = host._call("get frames needed",
                          lambda: _span(host.effect.frames_needed(time), time))
        try:
            for i, at in enumerate(request.times):
                pixels = np.frombuffer(payload, request.dtype, rod.width * rod.height * 4,
                                       i * request.frame_bytes)
                pixels = pixels.astype(ofx.DEPTH_DTYPES[host.depth], copy=False).reshape(
                    rod.height, rod.width, 4)  # a view of the payload where the byte order is
                host.add_source(at, ofx.Image(pixels, rod, host.depth))
            if host.instance.clip(ofx.SOURCE).frames.get(time) is None:
                raise ParamError(f"no Source frame at time {time:g}; send it in 'images'")
            out = host.render(time, request.window)
        finally:
            _trim(host, time, span)
        data = np.ascontiguousarray(out.view(request.window)).astype(request.dtype, copy=False)
        return {"window": request.window.as_list(), "depth": host.depth}, \
            memoryview(data).cast("B")  # sent from the image itself


# -- sessions ----------------------------------------------------------------------------------

class _Pace:
    """How a session waits for its client. On stdin/stdout the parent owns the pace: no
    timeouts. A socket client overrides these to time out stalls and to be evictable."""

    def waiting(self) -> None:
        """Before each header."""

    def working(self) -> None:
        """A request was read; the server works on it."""

    def replying(self) -> None:
        """Before each reply."""

    def stalled(self) -> str:
        return "timed out"


def _session(server: Server, reader: IO[bytes], writer: IO[bytes],
             pace: _Pace) -> tuple[int, str | None]:
    """Requests until ``quit`` or the end of input: (exit status, why the session ended early,
    or None)."""
    try:
        while True:
            pace.waiting()
            try:
                message = read_message(reader, server.check_payload)
            except FramingError as exc:
                reason = str(exc)
                try:
                    write_message(writer, _failure(exc))
                except OSError:
                    reason += " (the client was gone)"
                return 1, reason
            except VstpipeError as exc:
                pace.replying()
                write_message(writer, _failure(exc))
                continue
            if message is None or message.header.get("op") == "quit":
                return 0, None
            pace.working()
            reply, payload = server.answer(message)
            pace.replying()
            write_message(writer, reply, payload)
    except ConnectionError as exc:
        return 0, f"the client went away ({exc.strerror or type(exc).__name__})"
    except TimeoutError:
        return 1, pace.stalled()
    except OSError as exc:
        return 1, f"the connection failed ({exc.strerror or exc})"


def serve(stdin: IO[bytes], stdout: IO[bytes], catalog: effects.Catalog | None = None) -> int:
    """Answer requests until ``quit`` or the end of stdin; returns the exit status (1 when the
    framing was lost)."""
    return _serve_stream(stdin, stdout, catalog)[0]


def _serve_stream(stdin: IO[bytes], stdout: IO[bytes],
                  catalog: effects.Catalog | None) -> tuple[int, str | None]:
    server = Server(catalog or effects.load_catalog())
    try:
        return _session(server, stdin, stdout, _Pace())
    finally:
        server.close()


def serve_stdio() -> int:
    """Serve on this process's stdin and stdout. Anything an effect prints goes to stderr,
    so stdout carries nothing but replies."""
    replies = sys.stdout.buffer
    sys.stdout = sys.stderr
    status, reason = _serve_stream(sys.stdin.buffer, replies, None)
    if reason is not None:
        _log(f"session ended: {reason}")
    return status


def _log(line: str) -> None:
    sys.stderr.write(f"vstpipe serve: {line}\n")
    sys.stderr.flush()


# -- the socket server -------------------------------------------------------------------------

class _SocketWriter:
    """Replies straight to the socket: sendall's timeout bounds the whole reply, and nothing
    stays buffered to block the close of a client that stopped reading."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def write(self, data: bytes | bytearray) -> None:
        self.conn.sendall(data)

    def flush(self) -> None:
        """Nothing is buffered."""


class _Client(_Pace):
    """One connection: its phase (idle, reading, working, replying) and since when."""

    def __init__(self, number: int, conn: socket.socket, opts: ServeOptions,
                 lock: threading.Lock) -> None:
        self.number, self.conn, self.opts, self._lock = number, conn, opts, lock
        self.reader = conn.makefile("rb")
        self.phase, self.since = "idle", clock.monotonic()
        self.evicted: str | None = None  # why the server took this client's slot

    def _enter(self, phase: str, timeout: float | None) -> None:
        with self._lock:
            self.phase, self.since = phase, clock.monotonic()
        self.conn.settimeout(timeout)

    def waiting(self) -> None:
        self._enter("idle", None)  # between requests a client may wait while no one needs it
        if self.reader.peek(1):
            self._enter("reading", self.opts.io_timeout)

    def working(self) -> None:
        self._enter("working", None)  # an effect takes as long as it takes

    def replying(self) -> None:
        self._enter("replying", self.opts.io_timeout)

    def stalled(self) -> str:
        what = "did not read its reply" if self.phase == "replying" else "stalled mid-request"
        return f"{what} for {self.opts.io_timeout:g} s"

    def evictable(self, now: float) -> float:
        """How long past its allowance this client is idle or sending a request (< 0: not)."""
        if self.phase == "idle":
            return now - self.since - self.opts.idle_timeout
        if self.phase == "reading":
            return now - self.since - self.opts.io_timeout
        return -1.0

    def evict(self, now: float) -> None:
        """Take the slot (the caller holds the lock): the client's blocked read returns, and
        its thread ends."""
        self.evicted = (f"{'idle' if self.phase == 'idle' else 'sending one request'} for "
                        f"{now - self.since:.1f} s while another client waited for a slot")
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # it hung up meanwhile: the slot is free all the same


def _claim(path: Path) -> None:
    """Make ``path`` free for a new socket: remove a socket nobody listens on (left by a killed
    server); refuse a live server's socket and anything that is not a socket."""
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"{path}: cannot look at it ({exc.strerror})") from None
    if not stat.S_ISSOCK(before.st_mode):
        raise OutputError(f"{path} exists and is not a socket; remove it or choose another "
                          f"--socket path")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            pass  # nobody listens: stale
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OutputError(f"{path} exists and cannot be probed ({exc.strerror or exc}); "
                              f"remove it or choose another --socket path") from None
        else:
            raise OutputError(f"{path} exists and a server is listening on it; stop it or "
                              f"choose another --socket path")
    now = os.lstat(path)
    if (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino):  # still the same stale one
        path.unlink()


class SocketServer:
    """The protocol on a UNIX socket: one thread and one ``Server`` per client (see the module
    docstring for the connection model). Use as a context manager: leaving it stops accepting,
    drops the clients and removes the socket file."""

    def __init__(self, path: Path, catalog: effects.Catalog,
                 opts: ServeOptions = ServeOptions(),
                 log: Callable[[str], None] = _log) -> None:
        self.path, self.catalog, self.opts, self.log = path, catalog, opts, log
        self._lock = threading.Lock()
        self._clients: dict[int, tuple[_Client, threading.Thread]] = {}
        self._count = 0
        self._stop = threading.Event()
        _claim(path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._listener.bind(str(path))
        except OSError as exc:
            self._listener.close()
            raise OutputError(f"{path}: cannot listen there ({exc.strerror or exc})") from None
        bound = os.lstat(path)
        self._ours = (bound.st_dev, bound.st_ino)
        try:
            self._listener.listen(opts.max_clients)
        except BaseException:
            self.close()  # the socket file was made: it goes
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def serve_forever(self) -> None:
        """Accept clients until stop() or an interrupt (KeyboardInterrupt, which the CLI also
        raises for SIGTERM and SIGHUP)."""
        self._listener.settimeout(_POLL)  # to notice stop(); signals interrupt it anyway
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:  # out of file descriptors and the like: passes
                if self._stop.is_set():
                    break
                self.log(f"accepting a client failed ({exc.strerror or exc}); retrying")
                self._stop.wait(_POLL)
                continue
            self._admit(conn)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Stop, remove the socket file (if it is still ours), drop the clients."""
        self._stop.set()
        self._listener.close()
        try:
            now = os.lstat(self.path)
            if (now.st_dev, now.st_ino) == self._ours:
                self.path.unlink()
        except FileNotFoundError:
            pass  # removed by someone else already: nothing to clean
        with self._lock:
            running = list(self._clients.values())
        for client, _ in running:
            try:
                client.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # that client had already hung up
        deadline = clock.monotonic() + 5.0  # a render in progress is left to its daemon thread
        for _, thread in running:
            thread.join(max(0.0, deadline - clock.monotonic()))

    def _admit(self, conn: socket.socket) -> None:
        """Serve ``conn`` in a thread of its own, in a free slot or in the slot of the client
        most overdue; tell it the server is busy when there is neither."""
        now = clock.monotonic()
        with self._lock:  # close() sees every client this admits, started
            if self._stop.is_set():
                conn.close()
                return
            full = len(self._clients) >= self.opts.max_clients
            if full:
                overdue, victim = max(((c.evictable(now), c) for c, _ in
                                       self._clients.values()), key=lambda pair: pair[0])
                if overdue >= 0:
                    del self._clients[victim.number]  # its thread ends on its own
                    victim.evict(now)
                    full = False
            if not full:
                self._count += 1
                client = _Client(self._count, conn, self.opts, self._lock)
                thread = threading.Thread(target=self._run, args=(client,), daemon=True,
                                          name=f"vstpipe-serve-client-{client.number}")
                self._clients[client.number] = (client, thread)
                thread.start()
                return
        self._refuse(conn)

    def _refuse(self, conn: socket.socket) -> None:
        busy = ServerBusy(f"server busy: {self.opts.max_clients} clients are connected, the "
                          f"most it serves at once; try again later")
        with conn:
            conn.settimeout(self.opts.io_timeout)
            try:
                write_message(_SocketWriter(conn), _failure(busy))
            except OSError:
                pass  # the client did not wait for the answer
        self.log(f"a client was turned away: {busy}")

    def _run(self, client: _Client) -> None:
        server = Server(self.catalog)
        reason: str | None = None
        try:
            with client.conn, client.reader:
                _, reason = _session(server, client.reader, _SocketWriter(client.conn), client)
        finally:
            with self._lock:
                self._clients.pop(client.number, None)
            try:
                server.close()
            except VstpipeError as exc:
                reason = f"{reason or 'left'}; {exc}"
            reason = client.evicted or reason
            if reason is not None:
                self.log(f"client {client.number} dropped: {reason}")


def serve_socket(path: Path, opts: ServeOptions = ServeOptions()) -> int:
    """Listen on a UNIX socket at ``path`` until interrupted; the socket file is removed on the
    way out."""
    catalog = effects.load_catalog()
    with SocketServer(path, catalog, opts) as server:
        server.serve_forever()
    return 0
