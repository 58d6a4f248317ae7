"""Decoding: a Source demuxes and decodes one input file on a worker thread.

:class:`Source` carries on from :func:`~vstpipe.media.probing.open_video` and yields RGB
:class:`~vstpipe.media.frames.Frame` objects, each with its input pts, interleaved with
the raw packets of every copied stream, in demux order. The thread spends nearly all its
time inside FFmpeg calls that PyAV runs without the GIL, so it overlaps with the caller's
torch work. At the end the frames decoded are held against the header's promise
(truncation.py), and pts are paired with pictures in display order (AVI B-frames).
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Final, Self

import av
import av.error
from av.video.reformatter import VideoReformatter

from vstpipe.errors import MediaError, OptionError

from .color import to_rgb
from .frames import Frame, Trim, VideoInfo
from .probing import ffmpeg_reason, is_payload, open_video
from .streams import StreamPlan, Window
from .truncation import Reading
from .workers import Producer

# One logger for the whole package, named as before the split: notices are filtered by it.
_log = logging.getLogger("vstpipe.media")


class Source:
    """Decoded RGB frames and copy-through packets of one input file; use as a context manager.

    A file that ends before its header's promise (a cut or truncated file, or one cut while
    it is read) raises MediaError naming the frame counts at the end of items(); with
    ``allow_partial`` it logs that once as a warning and ends normally instead.
    """

    def __init__(self, path: Path, queue_size: int = 8, allow_partial: bool = False,
                 fps: Fraction | None = None) -> None:
        if queue_size < 1:
            raise OptionError(f"queue size must be at least 1, got {queue_size}")
        self.allow_partial = allow_partial
        opened = open_video(Path(path), fps)
        self.info: VideoInfo = opened.info
        self._container = opened.container
        self._video = opened.video
        self._copied = opened.copied
        self._packets = opened.packets
        self._backlog = opened.backlog
        self._discarded = opened.discarded
        self._promise = opened.promise
        # Snapshots, so a Sink can read them while the decode thread owns the container.
        self.plan = StreamPlan(
            info=opened.info, video_index=opened.video.index,
            display_matrix=opened.display_matrix, copied_streams=opened.copied,
            chapters=tuple(MappingProxyType(dict(c)) for c in self._container.chapters()),
            timecode=opened.timecode, has_alpha=opened.picture.alpha,
            mastering_display=opened.picture.mastering, content_light=opened.picture.light,
            field_order=opened.picture.field_order,
            metadata=MappingProxyType(dict(self._container.metadata)),
            video_metadata=MappingProxyType(dict(self._video.metadata)),
            video_disposition=self._video.disposition)
        self._deep = self.info.bit_depth > 8
        times = [f.pts for f in self._backlog if isinstance(f, av.VideoFrame) and f.pts is not None]
        # The first frame's time (seconds): where a trim's start and keyframe times count from.
        self.origin: Fraction = min(times) * self.info.time_base if times else Fraction(0)
        self._window: Window | None = None
        self._reformatter = VideoReformatter()  # used by the decode thread only
        self._worker = Producer(self._pump, name="vstpipe-decode", queue_size=queue_size)
        self._started = False
        self._closed = False

    def trim(self, trim: Trim) -> None:
        """Decode only ``trim``'s part (before items()); the plan's window tells the Sink to
        start the output's clock at its start. OptionError if it starts past the end."""
        if self._started:
            raise RuntimeError("Source.trim() must come before items()")
        if trim.whole:
            return
        duration = self.info.duration
        if duration is not None and trim.start >= Fraction(duration):
            raise OptionError.about("{start} {when} s is at or past the end of {path} "
                                    "({duration:.3f} s)", when=f"{float(trim.start):g}",
                                    path=self.info.path, duration=duration)
        cut = self.origin + trim.start
        stop = None if trim.end is None else self.origin + trim.end
        self._window = Window(self.origin, cut, stop, self.info.time_base)
        self.plan = dataclasses.replace(self.plan, window=self._window)

    @property
    def expected_frames(self) -> int | None:
        """Frames this source will yield, as far as the header says (for progress)."""
        frames, rate = self.info.frames, self.info.average_rate
        if self._window is None or not rate:
            return frames if self._window is None else None
        window = self._window
        first = window.frames_before(rate)
        last = frames if window.stop is None else window.frames_before(rate, window.stop)
        if frames is not None and last is not None:
            last = min(last, frames)
        return None if last is None else max(0, last - first)

    # -- consumer side ------------------------------------------------------

    def items(self) -> Iterator[Frame | av.Packet]:
        """Yield video Frames and packets of copied streams, in demux order.

        Decoding runs ahead on a background thread by at most ``queue_size`` items.
        Errors on that thread re-raise here; leaving the loop early stops the thread.
        """
        if self._started:
            raise RuntimeError("Source.items() can only be iterated once")
        if self._closed:
            raise RuntimeError("Source is closed")
        self._started = True
        self._worker.start()
        try:
            yield from self._worker.results()
            if self._worker.error is not None:
                raise self._worker.error
        finally:
            self._worker.halt()

    def close(self) -> None:
        """Stop the decode thread (if running) and release the file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._worker.halt()
        finally:
            # halt ends only once the worker has, even when a second Ctrl-C cuts it
            # short (see workers.join), so the demuxer is never freed under the thread.
            self._backlog = []
            self._container.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- producer side (decode thread) -------------------------------------

    def _frame(self, vframe: av.VideoFrame, pts: int | None) -> Frame:
        """Check and convert one decoded frame; ``pts`` is its display-order timestamp."""
        path = self.info.path
        width, height = self.info.width, self.info.height
        if (vframe.width, vframe.height) != (width, height):
            # Sink and model are sized once; resizing here would hide the change.
            raise MediaError(f"{path}: frame size changes from {width}x{height} "
                             f"to {vframe.width}x{vframe.height} at video pts "
                             f"{pts}; mid-stream size changes are not supported")
        if vframe.is_corrupt:
            _log.warning("%s: frame at pts %s is flagged corrupt", path, pts)
        return Frame(to_rgb(self._reformatter, vframe, self._deep), pts, self.info.time_base)

    def _pump(self) -> None:
        path = self.info.path
        video = self._video
        copied = {s.index for s in self._copied}
        reading = Reading(self.info.time_base, self._promise.frame_length,
                          discarded=self._discarded)
        order = _DisplayOrder()
        window = _InTrim(self._window, self.info.time_base)

        def emit(vframe: av.VideoFrame) -> bool:
            reading.saw_frame(vframe)
            for ready, pts in order.push(vframe, video.codec_context.reorder_depth):
                if window.keeps_frame(pts) and not self._worker.put(self._frame(ready, pts)):
                    return False
            return True

        # First what opening the file already read, then the rest of the same demux.
        backlog, self._backlog = self._backlog, []
        for item in backlog:
            if isinstance(item, av.VideoFrame):
                if not emit(item):
                    return
            else:
                reading.saw_packet(item)
                if window.keeps_packet(item) and not self._worker.put(item):
                    return
        del backlog  # decoded frames are large; do not keep them for the whole file
        packets = self._packets
        damage: str | None = None  # a decode or read error: fatal unless the file ends there
        while not self._worker.stop.is_set():
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as err:
                # A cut file often ends in a half-written packet the demuxer cannot parse.
                damage = damage or (f"read error after video pts {reading.last_pts} "
                                    f"({ffmpeg_reason(err)})")
                break
            index = packet.stream.index
            if index != video.index:
                if index in copied and is_payload(packet):
                    reading.saw_packet(packet)
                    if window.keeps_packet(packet) and not self._worker.put(packet):
                        return
                continue
            if window.done(packet):
                break  # a trim's end is well behind: nothing more of it is to come
            if damage is not None and is_payload(packet):
                # More video follows the damaged packet: the file is damaged, not cut.
                raise MediaError(f"{path}: {damage}")
            if packet.is_discard:
                reading.discarded += 1
            try:
                frames = video.decode(packet if packet.size else None)
            except av.error.FFmpegError as err:
                damage = damage or (f"decode error near video pts {packet.pts} "
                                    f"({ffmpeg_reason(err)})")
                continue
            for vframe in frames:
                if not emit(vframe):
                    return
        if self._worker.stop.is_set():
            return
        for ready, pts in order.flush():
            if window.keeps_frame(pts) and not self._worker.put(self._frame(ready, pts)):
                return
        if self._window is not None and not window.kept:
            cut, stop = self._window.cut, self._window.stop
            raise OptionError.about("{path} has no frame from {a:g} s to {b}; check {start} "
                                    "and {end}", path=path, a=float(cut - self.origin),
                                    b="its end" if stop is None
                                    else f"{float(stop - self.origin):g} s")
        if window.reached_end:
            # What lies after the trim's end is not read, so not held to the header; damage
            # before it was fatal where more video followed it.
            return
        self._check_complete(reading, damage)

    def _check_complete(self, reading: Reading, damage: str | None) -> None:
        """MediaError (or, with allow_partial, one warning) if the file ended early."""
        path = self.info.path
        short = self._promise.shortfall(reading.decoded, reading.discarded,
                                        reading.video_end, reading.any_end)
        if short is None:
            if damage is not None:
                raise MediaError(f"{path}: {damage}")  # whole, but its last frames are bad
            return
        message = f"{path}: truncated: {short}"
        if damage is not None:
            message += f"; it ends in a {damage.split(' (')[0]}"
        if not self.allow_partial:
            raise MediaError.about("{message}; {allow_partial} renders what decodes",
                                   message=message)
        _log.warning("%s; keeping the %d frames that decoded (partial input allowed)",
                     message, reading.decoded)


class _InTrim:
    """What of the input a trim keeps: frames and packets by time (seconds from the input's
    clock, compared exactly; half a tick of slack for times the muxer rounded)."""

    # Demuxing stops once video packets are this far past the end: frames held for
    # reordering and audio interleaved with the last frames have come out by then.
    AFTER_END: Final = Fraction(2)

    def __init__(self, window: Window | None, time_base: Fraction) -> None:
        self.cut, self.stop = (window.cut, window.stop) if window else (None, None)
        self.time_base = time_base
        self.kept = 0
        self.reached_end = False  # a frame at or after the end was decoded

    def keeps_frame(self, pts: int | None) -> bool:
        if self.cut is None:
            return True
        if pts is None:  # no time to judge by: kept between the first kept frame and the end
            keep = self.kept > 0 and not self.reached_end
        else:
            t = pts * self.time_base + self.time_base / 2
            if self.stop is not None and t > self.stop:
                self.reached_end = True
            keep = t > self.cut and not self.reached_end
        self.kept += keep
        return keep

    def keeps_packet(self, packet: av.Packet) -> bool:
        if self.cut is None or packet.pts is None or packet.time_base is None:
            return True
        tb = packet.time_base
        start = packet.pts * tb
        if self.stop is not None and start + tb / 2 > self.stop:
            return False
        if packet.stream.type == "subtitle":  # shown across the cut: kept, shortened by the Sink
            return start + (packet.duration or 0) * tb > self.cut
        return start + tb / 2 > self.cut

    def done(self, packet: av.Packet) -> bool:
        """A video packet so far past the end that demuxing can stop."""
        when = packet.dts if packet.dts is not None else packet.pts
        return (self.reached_end and self.stop is not None and when is not None
                and packet.time_base is not None
                and when * packet.time_base > self.stop + self.AFTER_END)


# The deepest reordering any decoder here reports (H.264/HEVC allow 16) bounds the frames
# held back; the window is twice the decoder's depth plus two (measured need: depth + 1
# for H.264 in AVI, 1 for DivX packed B-frames at depth 1).
_MAX_REORDER_WINDOW: Final = 16


class _DisplayOrder:
    """Pairs decoded pictures with their timestamps in increasing order.

    A decoder returns pictures in display order, each with the pts of the packet it came
    from. Containers that store no presentation times (AVI) fill those in decode order, so
    with B-frames (H.264 in AVI, DivX/Xvid "packed" B-frames) the pts of display-ordered
    pictures come out 1, 2, 4, 3, 5, 7, 6 ... The pictures are in the right order and the
    set of times is right; only the pairing is not. Holding a few frames and giving each
    the smallest pts not yet handed out restores it, plays the file as ffmpeg does, and
    changes nothing where pts already increase. Streams without reordering (intra-only,
    low delay: decoder depth 0) pass straight through.
    """

    def __init__(self) -> None:
        self._held: deque[av.VideoFrame] = deque()
        self._pts: list[int] = []  # min-heap of the held frames' pts
        self._window = 0

    def push(self, frame: av.VideoFrame, depth: int) -> list[tuple[av.VideoFrame, int | None]]:
        """Take one decoded frame; return the frames now ready, each with its pts."""
        if depth > 0:
            self._window = max(self._window, min(_MAX_REORDER_WINDOW, 2 * depth + 2))
        self._held.append(frame)
        if frame.pts is not None:
            heapq.heappush(self._pts, frame.pts)
        ready = []
        while len(self._held) > self._window:
            ready.append(self._release())
        return ready

    def flush(self) -> list[tuple[av.VideoFrame, int | None]]:
        """The frames still held, at the end of the stream."""
        return [self._release() for _ in range(len(self._held))]

    def _release(self) -> tuple[av.VideoFrame, int | None]:
        frame = self._held.popleft()
        # A frame without pts keeps none (the Sink spaces it); the others take the smallest.
        return frame, None if frame.pts is None else heapq.heappop(self._pts)


def open_source(path: Path, queue_size: int = 8, allow_partial: bool = False,
                fps: Fraction | None = None) -> Source:
    """Open ``path`` for decoding; MediaError if it cannot be read as a video.

    A still image is a one-frame video; a pattern such as ``shot/%05d.png`` an image sequence
    at ``fps`` (25 when None). ``allow_partial``: a file that ends before its header says
    (cut, truncated) yields what decodes and logs one warning naming the frame counts,
    instead of MediaError.
    """
    return Source(path, queue_size, allow_partial, fps)
