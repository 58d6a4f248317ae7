"""Decoding: a Source demuxes and decodes one input file on a worker thread.

:class:`Source` carries on from :func:`~vstpipe.media.probing.open_video` and yields RGB
:class:`~vstpipe.media.frames.Frame` objects, each with its input pts, interleaved with
the raw packets of every copied stream, in demux order. The thread spends nearly all its
time inside FFmpeg calls that PyAV runs without the GIL, so it overlaps with the caller's
torch work. At the end the frames decoded are held against the header's promise
(truncation.py), and pts are paired with pictures in display order (AVI B-frames).
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Final, Self

import av
import av.error
from av.video.reformatter import VideoReformatter

from vstpipe.errors import MediaError, OptionError

from .color import to_rgb
from .frames import Frame, VideoInfo
from .probing import ffmpeg_reason, is_payload, open_video
from .streams import StreamPlan
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

    def __init__(self, path: Path, queue_size: int = 8, allow_partial: bool = False) -> None:
        if queue_size < 1:
            raise OptionError(f"queue size must be at least 1, got {queue_size}")
        self.allow_partial = allow_partial
        opened = open_video(Path(path))
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
        self._reformatter = VideoReformatter()  # used by the decode thread only
        self._worker = Producer(self._pump, name="vstpipe-decode", queue_size=queue_size)
        self._started = False
        self._closed = False

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

        def emit(vframe: av.VideoFrame) -> bool:
            reading.saw_frame(vframe)
            for ready, pts in order.push(vframe, video.codec_context.reorder_depth):
                if not self._worker.put(self._frame(ready, pts)):
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
                if not self._worker.put(item):
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
                    if not self._worker.put(packet):
                        return
                continue
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
            if not self._worker.put(self._frame(ready, pts)):
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


def open_source(path: Path, queue_size: int = 8, allow_partial: bool = False) -> Source:
    """Open ``path`` for decoding; MediaError if it cannot be read as a video.

    ``allow_partial``: a file that ends before its header says (cut, truncated) yields
    what decodes and logs one warning naming the frame counts, instead of MediaError.
    """
    return Source(path, queue_size, allow_partial)
