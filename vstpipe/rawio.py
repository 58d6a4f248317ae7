"""Raw video frames over pipes: the pixel formats `vstpipe filter` speaks, a threaded reader
that cuts a byte stream into Frames, and a threaded writer that turns Frames back into bytes
(both media.workers threads, like the decode and encode threads of ``render``).

The byte layouts are FFmpeg's (``-f rawvideo -pix_fmt NAME``), so ffmpeg can decode into the
filter and encode out of it. Both threads spend their time in blocking pipe I/O, which releases
the GIL, so reading, the network and writing overlap as they do in ``render``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType
from typing import BinaryIO, Final, Self

import numpy as np

from .errors import MediaError, OptionError, OutputError
from .media import MAX_FRAME_PIXELS, MAX_FRAME_SIDE, Frame
from .media.workers import END, Consumer, Producer


@dataclass(frozen=True)
class PixFormat:
    """One FFmpeg raw pixel format: how an RGB frame is laid out in bytes."""

    name: str
    dtype: str  # numpy dtype of one sample, byte order explicit
    planar: bool  # three planes in FFmpeg's gbrp order (G, B, R) instead of packed R, G, B
    depth: int  # 8, 16 or 32: the frames Session.process makes for this format
    what: str  # one line for the README and --help

    def frame_bytes(self, size: tuple[int, int]) -> int:
        return size[0] * size[1] * 3 * np.dtype(self.dtype).itemsize

    def to_rgb(self, data: bytearray, size: tuple[int, int]) -> np.ndarray:
        """One frame's bytes -> (H, W, 3) RGB as Frame.rgb holds it (native byte order)."""
        w, h = size
        samples = np.frombuffer(data, dtype=self.dtype)
        if not self.planar:  # a zero-copy view of the bytes read on little-endian machines
            return samples.reshape(h, w, 3).astype(samples.dtype.newbyteorder("="), copy=False)
        g, b, r = samples.reshape(3, h, w)
        rgb = np.stack([r, g, b], axis=-1).astype(np.float32)
        # The network knows only [0, 1]; float sources may hold NaN or HDR values above 1.
        np.nan_to_num(rgb, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(rgb, 0.0, 1.0, out=rgb)

    def to_bytes(self, rgb: np.ndarray) -> memoryview:
        """(H, W, 3) RGB at this format's depth -> the frame's bytes, without copying rgb24."""
        if self.planar:
            rgb = np.stack([rgb[..., 1], rgb[..., 2], rgb[..., 0]])  # (3, H, W): G, B, R
        return memoryview(np.ascontiguousarray(rgb, dtype=self.dtype)).cast("B")


PIX_FMTS: Final = {f.name: f for f in (
    PixFormat("rgb24", "|u1", False, 8, "8-bit R, G, B interleaved"),
    PixFormat("rgb48le", "<u2", False, 16, "16-bit little-endian R, G, B interleaved"),
    PixFormat("gbrpf32le", "<f4", True, 32,
              "32-bit float planes G, then B, then R, values in [0, 1]"),
)}


def pix_format(name: str, setting: str = "pix_fmt") -> PixFormat:
    if name not in PIX_FMTS:
        raise OptionError.about(f"{{{setting}}} {{name}}: not supported; valid: "
                                f"{', '.join(PIX_FMTS)}", name=name)
    return PIX_FMTS[name]




def parse_rate(text: str, setting: str) -> Fraction:
    """'25', '29.97' or '30000/1001' -> a positive Fraction, or OptionError naming ``setting``."""
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise OptionError.about(f"{{{setting}}} {{text}}: not a number or fraction like "
                                "30000/1001", text=text[:40]) from None
    if value <= 0:
        raise OptionError.about(f"{{{setting}}} {{text}}: use a positive value", text=text)
    return value


@dataclass(frozen=True)
class RawOptions:
    """The raw stream's geometry and timing: raw frames carry neither, so the user states them."""

    size: tuple[int, int]  # (W, H) of every frame, in and out
    pix_fmt: str = "rgb24"  # input layout, a key of PIX_FMTS
    out_pix_fmt: str | None = None  # output layout; None = pix_fmt
    # Seconds per frame: frame n is at n * frame_time. None: frames carry no time, which
    # only a look that does not change over time can accept.
    frame_time: Fraction | None = None

    @property
    def input(self) -> PixFormat:
        return pix_format(self.pix_fmt)

    @property
    def output(self) -> PixFormat:
        return pix_format(self.out_pix_fmt or self.pix_fmt, "out_pix_fmt")


def check(raw: RawOptions) -> None:
    """OptionError for an impossible raw stream description, before anything is read.

    The frame size is the user's word and every buffer is allocated from it, so it is bounded.
    """
    w, h = raw.size
    shown = f"{w}x{h}"[:40]  # a width may have thousands of digits
    if w < 1 or h < 1:
        raise OptionError.about("{size} {shown}: width and height must be positive", shown=shown)
    if w > MAX_FRAME_SIDE or h > MAX_FRAME_SIDE or w * h > MAX_FRAME_PIXELS:
        raise OptionError.about("{size} {shown}: frames are limited to {side} pixels a side "
                                "and {pixels} pixels in all (8192x4320)", shown=shown,
                                side=MAX_FRAME_SIDE, pixels=MAX_FRAME_PIXELS)
    pix_format(raw.pix_fmt)
    pix_format(raw.out_pix_fmt or raw.pix_fmt, "out_pix_fmt")
    if raw.frame_time is not None and raw.frame_time <= 0:
        raise OptionError.about("frame time {t}: use a positive {fps} or {timebase}",
                                t=raw.frame_time)


def _read_exactly(stream: BinaryIO, buf: bytearray) -> int:
    """Fill ``buf`` from ``stream``; fewer bytes only at end of stream. Pipes return short
    reads whenever the writer has not caught up, so one read is never enough."""
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


class RawReader:
    """Frames cut from a byte stream on a background thread, a bounded queue ahead.

    Iterating stops at the end of the stream; a stream that ends inside a frame stops the
    iteration too, and :meth:`check_end` then raises MediaError naming the byte counts, so the
    caller can finish (and write) every complete frame first.
    """

    def __init__(self, stream: BinaryIO, raw: RawOptions, queue_size: int = 8) -> None:
        self._stream, self._raw, self._fmt = stream, raw, raw.input
        # A daemon thread: one blocked reading a pipe nobody writes to must not keep the
        # process alive once the caller has stopped (e.g. the output pipe was closed).
        self._worker = Producer(self._run, name="vstpipe-raw-reader",
                                queue_size=max(1, queue_size))

    def __enter__(self) -> Self:
        self._worker.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._worker.stop.set()  # no join: the thread may be blocked reading the pipe

    def _run(self) -> None:
        size, need = self._raw.size, self._fmt.frame_bytes(self._raw.size)
        index = 0
        try:
            while not self._worker.stop.is_set():
                buf = bytearray(need)
                got = _read_exactly(self._stream, buf)
                if got < need:
                    if got:
                        w, h = size
                        raise MediaError.about(
                            "input ended {got} bytes into frame {index}; a {w}x{h} {fmt} frame "
                            "is {need} bytes (check {size} and {pix_fmt}); the {index} complete "
                            "frames before it were written", got=got, index=index, w=w, h=h,
                            fmt=self._fmt.name, need=need)
                    return
                pts, time_base = self._timing(index)
                if not self._worker.put(Frame(self._fmt.to_rgb(buf, size), pts, time_base)):
                    return
                index += 1
        except OSError as err:
            raise MediaError(f"reading the input failed after {index} frames: "
                             f"{err.strerror or err}") from None

    def _timing(self, index: int) -> tuple[int | None, Fraction]:
        if self._raw.frame_time is None:
            return None, Fraction(1)  # no pts: the time base describes nothing
        return index, self._raw.frame_time

    def items(self) -> Iterator[Frame]:
        """The frames, in order (a FrameSource: a raw stream has nothing else to copy)."""
        yield from self._worker.results()

    def check_end(self) -> None:
        """Raise what ended the stream early (a partial frame, a read error), if anything."""
        if self._worker.error is not None:
            raise self._worker.error


class RawWriter:
    """Frames written as raw bytes on a background thread, behind a bounded queue.

    A closed output (EPIPE: the reader went away, e.g. ``| head -c``) is not an error: the
    writer stops, :attr:`closed` turns true and the caller stops sending.
    """

    def __init__(self, stream: BinaryIO, fmt: PixFormat, queue_size: int = 8) -> None:
        self._stream, self._fmt = stream, fmt
        self._closed = False
        self.frames_written = 0
        self._worker = Consumer(self._run, name="vstpipe-raw-writer",
                                queue_size=max(1, queue_size))

    @property
    def closed(self) -> bool:
        """True once the output was found closed by its reader."""
        return self._closed

    def __enter__(self) -> Self:
        self._worker.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:  # failing anyway: do not wait on a pipe that may be stuck
            self._worker.stop.set()
            return
        self._worker.put(END)
        # A plain join: no FFmpeg state to protect here, and a Ctrl-C must not wait for a
        # pipe that may never drain.
        self._worker.thread.join()
        if self._worker.error is not None:
            raise self._worker.error

    def write(self, frame: Frame) -> None:
        """Queue one frame for writing; blocks while the queue is full (bounded memory).

        Raises what stopped the writer (other than a closed output) as soon as it is known.
        """
        self._worker.send(frame)  # False once the output is closed: nothing to raise then

    def copy(self, packet: object) -> None:
        """Part of the FrameSink protocol; a raw pipe carries frames only, so this is a bug."""
        raise ValueError("a raw frame pipe carries video frames only, not packets")

    def _run(self) -> None:
        try:
            for frame in self._worker.requests():
                self._stream.write(self._fmt.to_bytes(frame.rgb))
                self.frames_written += 1
            if not self._worker.stop.is_set():  # END, not a caller that gave up: flush
                self._stream.flush()
        except BrokenPipeError:
            self._closed = True
        except OSError as err:
            raise OutputError(f"writing the output failed after {self.frames_written} "
                              f"frames: {err.strerror or err}") from None
