"""Opening an input video: refuse what is not one, pick the streams, decode the first frame.

:func:`open_video` reads a file up to its first decoded frame and hands over the open
container with everything read so far, so :class:`~vstpipe.media.decode.Source` decodes
the very file that was probed, opened once. :func:`probe` is the same, closed at once.
Also here: the small facts about streams, packets and FFmpeg errors that decoding and
encoding quote.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import av.error
import numpy as np
from av.container import InputContainer
from av.sidedata.sidedata import Type as SideDataType
from av.stream import Disposition, Stream
from av.video.stream import VideoStream

from vstpipe.errors import MediaError, OptionError

from . import sequences
from .color import UNSPECIFIED, bit_depth_of
from .frames import VideoInfo
from .truncation import Promise, header_promise

# One logger for the whole package, named as before the split: notices are filtered by it.
_log = logging.getLogger("vstpipe.media")


def ffmpeg_reason(err: BaseException) -> str:
    """FFmpeg's own words for what went wrong, one line."""
    if isinstance(err, av.error.FFmpegError) and err.strerror:
        return err.strerror
    return str(err).splitlines()[0] if str(err) else type(err).__name__


@dataclass(frozen=True)
class Demuxer:
    """How to open an input with FFmpeg: its demuxer and options (an image sequence's)."""

    name: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    start_number: int | None = None

    @staticmethod
    def of(path: Path, fps: Fraction | None) -> Demuxer:
        """image2 with the rate and first number for a sequence pattern; else FFmpeg's probe."""
        if not sequences.is_sequence(path):
            if fps is not None:
                raise OptionError.about("{fps} is the rate of an image-sequence input such as "
                                        "shot/%05d.png; {path} keeps its own timing",
                                        path=path)
            return Demuxer()
        found = sequences.find(path)
        rate = sequences.check_fps(fps)
        return Demuxer("image2", (("framerate", str(rate)), ("start_number", str(found.first))),
                       found.first)


def open_container(path: Path, demuxer: Demuxer = Demuxer()) -> InputContainer:
    """``path`` opened for reading as ``demuxer`` says (a fresh read of a probed input)."""
    # "replace" so a mis-encoded title tag cannot make an otherwise fine file unreadable.
    return av.open(str(path), "r", format=demuxer.name, options=dict(demuxer.options),
                   metadata_errors="replace")


def _open_input(path: Path, demuxer: Demuxer) -> InputContainer:
    if demuxer.name is None:  # a pattern names files that exist, found by sequences.find
        if not path.exists():
            raise MediaError(f"{path}: no such file")
        if not path.is_file():
            raise MediaError(f"{path}: not a regular file")
    try:
        return open_container(path, demuxer)
    except av.error.FFmpegError as err:
        raise MediaError(f"{path}: not a readable media file ({ffmpeg_reason(err)})") from None
    except (OSError, UnicodeError) as err:
        raise MediaError(f"{path}: cannot open ({ffmpeg_reason(err)})") from None


def stream_label(stream: Stream) -> str:
    """A stream as messages name it: "audio:aac"."""
    codec = stream.codec_context.name if stream.codec_context is not None else stream.name
    return f"{stream.type}:{codec or 'unknown'}"


_AVDISCARD_ALL: Final = 48


def _is_timecode(stream: Stream) -> bool:
    # The mov demuxer reads a tmcd track as a data stream tagged with its start timecode.
    return stream.type == "data" and "timecode" in stream.metadata


def _pick_streams(container: InputContainer, path: Path
                  ) -> tuple[VideoStream, list[Stream], str | None]:
    """The video stream to stylize, the streams to copy, and the start timecode if any.

    Cover art, further video streams and attachments are copied too where the output
    container can hold them; the Sink decides that and names what it drops.
    """
    video: VideoStream | None = None
    copied: list[Stream] = []
    timecode: str | None = None
    for stream in container.streams:
        if stream.discard == _AVDISCARD_ALL:
            # The demuxer's own choice, read elsewhere: a QuickTime chapter track, whose
            # text the container already reports as chapters.
            continue
        if stream.type == "video":
            # Cover art is a one-picture "video" stream; never mistake it for the movie.
            is_cover = bool(stream.disposition & Disposition.attached_pic)
            if video is None and not is_cover:
                video = stream  # type: ignore[assignment]
            else:
                copied.append(stream)
        elif _is_timecode(stream):
            # Not copied as a track (muxers reject a bare tmcd copy, mov only at the very
            # end): the Sink writes the start timecode as a tag, which mov/mp4 turn into
            # a fresh tmcd track and Matroska keeps as TIMECODE.
            timecode = timecode or stream.metadata["timecode"]
        elif stream.type in ("audio", "subtitle", "data", "attachment"):
            copied.append(stream)
        else:
            _log.warning("%s: ignoring %s stream #%d", path, stream.type, stream.index)
    if video is None:
        found = ", ".join(stream_label(s) for s in container.streams) or "no streams"
        raise MediaError(f"{path}: no video stream (found: {found})")
    tags = {k.lower(): v for k, v in video.metadata.items()}
    return video, copied, timecode or tags.get("timecode")


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    # FFmpeg >= 7 attaches the container's display matrix to every decoded frame; PyAV
    # has no stream-level getter, so the first frame is where we read it.
    side = frame.side_data.get(SideDataType.DISPLAYMATRIX)
    if side is None:
        return None
    values = np.frombuffer(bytes(side), dtype=np.int32)
    return tuple(int(v) for v in values) if values.size == 9 else None


def is_payload(packet: av.Packet) -> bool:
    """Whether ``packet`` carries data to copy."""
    # Size 0 without timestamps is the demuxer's end-of-stream marker, not data; a
    # muxer would reject it.
    return bool(packet.size) or packet.dts is not None


def _known_sar(sar: Fraction | None) -> Fraction | None:
    # FFmpeg says 0 (or 0/0, which PyAV turns into None) for "not stated".
    return sar if sar else None


@dataclass(frozen=True)
class Picture:
    """What the first decoded frame says that RGB Frames cannot carry."""

    alpha: bool  # the pixel format has an alpha channel
    mastering: bytes | None  # AVMasteringDisplayMetadata (HDR mastering display)
    light: bytes | None  # AVContentLightMetadata (MaxCLL, MaxFALL)
    field_order: int  # AVFieldOrder: 0 unknown, 1 progressive, 2-5 interlaced orders


_AV_FIELD_PROGRESSIVE: Final = 1
_AV_FIELD_TT: Final = 2  # top field coded and shown first
FIELD_NAMES: Final = {2: "top field first", 3: "bottom field first",
                      4: "top field coded first, bottom shown first",
                      5: "bottom field coded first, top shown first"}


def _picture(frame: av.VideoFrame, ctx: av.codec.context.CodecContext) -> Picture:
    side = {item.type: bytes(item) for item in frame.side_data}
    # An interlaced frame of unstated order is taken as top field first, the usual order
    # (PyAV does not expose the frame's own top-field-first flag).
    order = ctx.field_order if ctx.field_order in FIELD_NAMES else (
        _AV_FIELD_TT if frame.interlaced_frame else _AV_FIELD_PROGRESSIVE)
    return Picture(
        alpha=any(c.is_alpha for c in frame.format.components),
        mastering=side.get(SideDataType.MASTERING_DISPLAY_METADATA),
        light=side.get(SideDataType.CONTENT_LIGHT_LEVEL),
        field_order=int(order),
    )


@dataclass
class Opened:
    """An input file read up to its first decoded video frame, ready to continue."""

    container: InputContainer
    video: VideoStream
    copied: tuple[Stream, ...]
    info: VideoInfo
    display_matrix: tuple[int, ...] | None
    packets: Iterator[av.Packet]  # the demux in progress: the rest of the file
    backlog: list[av.VideoFrame | av.Packet]  # read so far, in the order to hand out
    discarded: int  # video packets read so far that an edit list cuts
    promise: Promise
    timecode: str | None  # start timecode (mov/mp4 tmcd track or a timecode tag)
    picture: Picture


def open_video(path: Path, fps: Fraction | None = None) -> Opened:
    """Open ``path``, pick its streams and decode up to the first frame; MediaError if not.

    Source keeps the open container and carries on from here, so a file is opened (and
    its streams probed) once, and what Source decodes is the very file that was probed.
    Packets of copied streams read before that frame are kept in order in the backlog;
    demuxers interleave by time, so that is whatever precedes the first frame's time.
    """
    demuxer = Demuxer.of(path, fps)
    container = _open_input(path, demuxer)
    try:
        return _read_first_frame(container, path, demuxer)
    except BaseException:
        container.close()
        raise


def _read_first_frame(container: InputContainer, path: Path, demuxer: Demuxer) -> Opened:
    video, copied, timecode = _pick_streams(container, path)
    video.thread_type = "AUTO"
    wanted = {s.index for s in copied}
    packets = container.demux([video, *copied])
    backlog: list[av.VideoFrame | av.Packet] = []
    discarded = 0
    frame: av.VideoFrame | None = None
    try:
        for packet in packets:
            if packet.stream.index != video.index:
                if packet.stream.index in wanted and is_payload(packet):
                    backlog.append(packet)
                continue
            if packet.is_discard:
                discarded += 1
            frames = video.decode(packet if packet.size else None)
            if frames:
                # Keep all of them: a frame-threaded decoder may return several at once.
                backlog.extend(frames)
                frame = frames[0]
                break
    except av.error.FFmpegError as err:
        raise MediaError(f"{path}: corrupt video stream ({ffmpeg_reason(err)})") from None
    if frame is None:
        raise MediaError(f"{path}: the video stream has no decodable frame")

    ctx = video.codec_context
    time_base = video.time_base or Fraction(1, 90000)
    rate = video.average_rate or video.guessed_rate or None
    promise = header_promise(container, video, rate)
    duration = float(promise.duration) if promise.duration is not None else None
    frames_declared = promise.about
    pix_fmt = frame.format.name
    # Per-frame tags are what the decoder actually saw (e.g. H.264 VUI); fall back
    # to the stream's when the frame leaves one unspecified.
    info = VideoInfo(
        path=path,
        width=frame.width,
        height=frame.height,
        time_base=time_base,
        average_rate=rate,
        frames=frames_declared,
        duration=duration,
        codec=ctx.name,
        pix_fmt=pix_fmt,
        bit_depth=bit_depth_of(pix_fmt),
        rotation=frame.rotation,
        color_range=int(frame.color_range or ctx.color_range),
        colorspace=int(frame.colorspace if frame.colorspace != UNSPECIFIED
                       else ctx.colorspace),
        color_primaries=int(frame.color_primaries if frame.color_primaries != UNSPECIFIED
                            else ctx.color_primaries),
        color_trc=int(frame.color_trc if frame.color_trc != UNSPECIFIED
                      else ctx.color_trc),
        copied_streams=tuple(stream_label(s) for s in copied),
        # The container's value wins over the bitstream's, as in every player
        # (av_guess_sample_aspect_ratio); the decoder's covers codecs whose
        # parameters only say it once a frame is decoded.
        sample_aspect_ratio=_known_sar(video.sample_aspect_ratio)
        or _known_sar(ctx.sample_aspect_ratio),
        demuxer=demuxer.name, demuxer_options=demuxer.options,
        start_number=demuxer.start_number,
    )
    return Opened(container, video, tuple(copied), info, _display_matrix(frame), packets,
                  backlog, discarded, promise, timecode, _picture(frame, ctx))


def probe(path: Path, fps: Fraction | None = None) -> VideoInfo:
    """Describe the video in ``path`` (an image sequence at ``fps``); MediaError if it is
    missing, not media or broken."""
    opened = open_video(Path(path), fps)
    opened.container.close()
    return opened.info
