"""Media I/O: probe, threaded decode to RGB, threaded encode from RGB, and stream copy.

Data flow: ``open_source`` demuxes and decodes on a background thread and yields RGB
:class:`Frame` objects interleaved with the raw packets of every other stream;
``open_sink`` encodes frames on another background thread, remuxes those packets
unchanged, and claims the target with its temporary file only when everything
succeeded (atomic.TempOutput: never over a file that appeared there meanwhile).
Both threads spend nearly all their time inside FFmpeg calls that PyAV runs without
the GIL, so they overlap with the caller's torch work.
"""

from __future__ import annotations

import heapq
import io
import logging
import os
import queue
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Final, Self

import av
import av.error
import numpy as np
from av.codec.codec import UnknownCodecError
from av.codec.context import Flags
from av.container import InputContainer, OutputContainer
from av.sidedata.sidedata import Type as SideDataType
from av.stream import Disposition, Stream
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter
from av.video.stream import VideoStream

from vstpipe import atomic
from vstpipe.errors import MediaError, OptionError, OutputError

_log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Public data types
# ---------------------------------------------------------------------------


# eq=False: the generated __eq__/__hash__ would compare/hash the ndarray, which numpy
# refuses; identity semantics are what a frame in flight needs anyway.
@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame as RGB, with the timing of the input frame it came from."""

    # (H, W, 3) C-contiguous: uint8, uint16 on the full 0..65535 scale, or float32 in [0, 1]
    # (raw gbrpf32le frames from `vstpipe filter`; the encoder here takes 8 and 16 bits only).
    rgb: np.ndarray
    pts: int | None  # the input frame's pts, carried through untouched
    time_base: Fraction  # of that pts


# Frames a user can ask for (render --size, filter --size) are bounded before any buffer exists.
MAX_FRAME_SIDE: Final = 16384  # pixels, either side
MAX_FRAME_PIXELS: Final = 8192 * 4320  # DCI 8K; a gbrpf32le frame of it is 425 MB


@dataclass(frozen=True)
class VideoInfo:
    """What the rest of the pipeline needs to know about an input video."""

    path: Path
    width: int  # coded size, before rotation
    height: int
    time_base: Fraction
    average_rate: Fraction | None
    frames: int | None  # declared by the container, else duration*rate, else None
    duration: float | None  # seconds
    codec: str
    pix_fmt: str
    bit_depth: int  # 8, or 10/12/16
    rotation: int  # display rotation in degrees as stored (0, 90, 180, 270, -90 ...)
    color_range: int  # raw ffmpeg enum values
    colorspace: int
    color_primaries: int
    color_trc: int
    copied_streams: tuple[str, ...]  # e.g. ("audio:aac", "subtitle:mov_text")
    # Width:height of one pixel as the file states it; None when it states none (square).
    sample_aspect_ratio: Fraction | None = None


# Encoders we know to work end to end, shown when the user names one that does not
# exist; any other FFmpeg video encoder is accepted as well.
_KNOWN_ENCODERS: Final = ("libx264", "libx265", "prores", "ffv1", "mpeg4", "libvpx-vp9",
                          "libsvtav1")
# "prores" in FFmpeg is the fast prores_aw encoder; prores_ks is the one that honours
# profiles and quality settings, so the friendly name maps to it.
_ENCODER_ALIASES: Final = {"prores": "prores_ks"}
_CRF_ENCODERS: Final = frozenset({"libx264", "libx265"})


@dataclass(frozen=True)
class EncodeOptions:
    """How the output video stream is encoded (checked by check_encode_options)."""

    codec: str = "libx264"  # any FFmpeg video encoder; "prores" means prores_ks
    crf: int = 18  # for x264/x265
    pix_fmt: str | None = None  # None: derived from the source (see _pick_pix_fmt)
    size: tuple[int, int] | None = None  # output (W, H); None = same as input


def check_encode_options(options: EncodeOptions) -> None:
    """OptionError naming the bad value and the valid ones; open_sink calls it first.

    A plain function rather than __post_init__ so building options never raises: the
    CLI constructs them before it starts turning library errors into one-line messages.
    """
    codec = _encoder(options.codec)
    crf = options.crf
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise OptionError(f"crf must be an integer from 0 to 51, got {crf!r}")
    if options.pix_fmt is not None:
        try:
            av.VideoFormat(options.pix_fmt)
        except ValueError:
            raise OptionError(f"unknown pixel format {options.pix_fmt!r}") from None
        supported = _encoder_pix_fmts(codec)
        if supported and options.pix_fmt not in supported:
            raise OptionError(f"encoder {codec.name} cannot encode pixel format "
                              f"{options.pix_fmt!r}; valid: {', '.join(supported)}")
    size = options.size
    if size is not None and not (
        isinstance(size, tuple) and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise OptionError(f"size must be (width, height) in positive pixels, got {size!r}")
    if size is not None and (max(size) > MAX_FRAME_SIDE or size[0] * size[1] > MAX_FRAME_PIXELS):
        raise OptionError(f"output size {size[0]}x{size[1]}: frames are limited to "
                          f"{MAX_FRAME_SIDE} pixels a side and {MAX_FRAME_PIXELS} pixels in all "
                          f"(8192x4320)")


def _find_encoder(name: str) -> av.Codec | None:
    """The FFmpeg encoder behind a user-facing codec name; None if this FFmpeg lacks it."""
    try:
        return av.Codec(_ENCODER_ALIASES.get(name, name), "w")
    except UnknownCodecError:
        return None


def _encoder(name: str) -> av.Codec:
    """The FFmpeg video encoder for a user-facing codec name, or OptionError."""
    codec = _find_encoder(name)
    if codec is not None and codec.type == "video":
        return codec
    # Built only on failure: it instantiates every known encoder.
    choices = ", ".join(n for n in _KNOWN_ENCODERS if _find_encoder(n) is not None)
    if codec is None:
        raise OptionError(f"unknown video codec {name!r}; valid choices: {choices} "
                          f"(or any FFmpeg video encoder)")
    raise OptionError(f"codec {name!r} is not a video encoder; valid choices: {choices}")


def _encoder_pix_fmts(codec: av.Codec) -> list[str]:
    # Some encoders (e.g. wrappers negotiating at open time) list no formats. Hardware
    # surface formats (cuda, vaapi ...) have no components and cannot take our frames.
    return [f.name for f in codec.video_formats or () if f.components]


# ---------------------------------------------------------------------------
# Colour handling
# ---------------------------------------------------------------------------

# AVColorSpace (what streams and frames carry) -> swscale matrix. swscale has no
# constant for SMPTE 170M or BT.2020 CL; their matrices equal BT.601 and BT.2020 NCL.
_AVCOL_SPC_RGB: Final = 0
_UNSPECIFIED: Final = 2  # the same value in AVColorSpace, AVColorPrimaries and AVColorTRC
_AVCOL_SPC_SMPTE170M: Final = 6
_SWS_MATRIX: Final = {
    1: Colorspace.ITU709,
    4: Colorspace.FCC,
    5: Colorspace.ITU601,
    6: Colorspace.ITU601,
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,
    10: Colorspace.BT2020,
}


def _sws_matrix(colorspace: int) -> Colorspace:
    # Unspecified (and anything swscale cannot do) falls back to BT.601, the
    # historical FFmpeg default, so decode and encode always agree on one matrix.
    return _SWS_MATRIX.get(colorspace, Colorspace.ITU601)


@dataclass(frozen=True)
class _OutputColor:
    """Tags written to the output plus the matrix/range used to produce matching YUV."""

    colorspace: int
    color_range: int
    color_primaries: int
    color_trc: int
    sws_matrix: Colorspace
    sws_range: ColorRange


def _output_color(info: VideoInfo, pix_fmt: str) -> _OutputColor:
    full_range = info.color_range == ColorRange.JPEG or info.pix_fmt.startswith("yuvj")
    if av.VideoFormat(pix_fmt).is_rgb:
        # RGB output carries no matrix; the tags say so and swscale ignores the rest.
        return _OutputColor(_AVCOL_SPC_RGB, ColorRange.JPEG, info.color_primaries,
                            info.color_trc, Colorspace.ITU601, ColorRange.JPEG)
    if info.colorspace in _SWS_MATRIX or info.colorspace == _UNSPECIFIED:
        # Unspecified stays unspecified: we converted with the BT.601 fallback both
        # ways, so players see the same picture they saw for the input.
        tag = info.colorspace
    else:
        # RGB sources (or matrices swscale lacks) become BT.601 YUV; say so.
        tag = _AVCOL_SPC_SMPTE170M
    if full_range:
        rng_tag, sws_range = ColorRange.JPEG, ColorRange.JPEG
    else:
        rng_tag = info.color_range if info.colorspace != _AVCOL_SPC_RGB else ColorRange.MPEG
        sws_range = ColorRange.MPEG
    return _OutputColor(tag, int(rng_tag), info.color_primaries, info.color_trc,
                        _sws_matrix(tag), sws_range)


def _bit_depth(pix_fmt: str) -> int:
    # Paletted and 1-bit formats report < 8 bits per component; they convert to 8-bit RGB.
    return max(8, max((c.bits for c in av.VideoFormat(pix_fmt).components), default=8))


# swscale's default 8-bit YUV->RGB path skips chroma interpolation and rounds down: on
# real footage it measured ~1.3 levels too dark on average (mean error 1.36 levels vs 0.27
# with these flags), for ~3 ms per 720p frame on the decode thread. Deep sources take the
# high-precision path, which is unbiased as it is; there FULL_CHR_H_INT must stay off:
# with packed rgb48 output it corrupts 4:2:0 input (errors of ~50 levels, FFmpeg 8.1),
# and planar gbrp16 output is the accurate route. RGB->YUV is unbiased with the
# defaults, so the encoder keeps them.
_RGB8: Final = ("rgb24", Interpolation.BILINEAR | Interpolation.ACCURATE_RND
                | Interpolation.FULL_CHR_H_INT)
_RGB16: Final = ("gbrp16le", Interpolation.BILINEAR)  # to_ndarray returns it as (H, W, RGB)


def _to_rgb(reformatter: VideoReformatter, frame: av.VideoFrame, deep: bool) -> np.ndarray:
    """Convert with the frame's own matrix/range (BT.601 fallback) to contiguous RGB.

    ``frame.to_ndarray(format=...)`` would do the same through a VideoReformatter it
    creates for that one frame; passing one long-lived reformatter per thread lets
    swscale keep its context between frames instead of rebuilding it every time.
    """
    rgb_format, flags = _RGB16 if deep else _RGB8
    src_range = frame.color_range if frame.color_range in (ColorRange.MPEG,
                                                             ColorRange.JPEG) else None
    # None lets swscale infer the range from the pixel format (yuvj* = full).
    rgb = reformatter.reformat(
        frame,
        format=rgb_format,
        src_colorspace=_sws_matrix(frame.colorspace),
        src_color_range=src_range,
        dst_color_range=ColorRange.JPEG,
        interpolation=flags,
    )
    # PyAV returns a strided view when the plane rows are padded; the model wants dense.
    return np.ascontiguousarray(rgb.to_ndarray())


# ---------------------------------------------------------------------------
# Probing
# ---------------------------------------------------------------------------


def _ffmpeg_reason(err: BaseException) -> str:
    if isinstance(err, av.error.FFmpegError) and err.strerror:
        return err.strerror
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _is_still_image(container: InputContainer) -> bool:
    # FFmpeg reads a lone picture file (PNG, JPEG, WebP, BMP, TIFF ...) through image2 or
    # a per-format "<codec>_pipe" demuxer, as a one-frame video. Real containers never
    # use those demuxers, so a one-frame mp4/mkv still counts as a video. Animated
    # formats (gif, apng) have demuxers of their own and are videos too.
    names = container.format.name.split(",")
    return any(name in ("image2", "image2pipe") or name.endswith("_pipe") for name in names)


def _open_input(path: Path) -> InputContainer:
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    try:
        # "replace" so a mis-encoded title tag cannot make an otherwise fine file unreadable.
        container = av.open(str(path), "r", metadata_errors="replace")
    except av.error.FFmpegError as err:
        raise MediaError(f"{path}: not a readable media file ({_ffmpeg_reason(err)})") from None
    except (OSError, UnicodeError) as err:
        raise MediaError(f"{path}: cannot open ({_ffmpeg_reason(err)})") from None
    if _is_still_image(container):
        container.close()
        raise MediaError(f"{path}: a still image, not a video; pass it as --style, "
                         f"or give a video file")
    return container


def _stream_label(stream: Stream) -> str:
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
        found = ", ".join(_stream_label(s) for s in container.streams) or "no streams"
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


def _is_payload(packet: av.Packet) -> bool:
    # Size 0 without timestamps is the demuxer's end-of-stream marker, not data; a
    # muxer would reject it.
    return bool(packet.size) or packet.dts is not None


def _known_sar(sar: Fraction | None) -> Fraction | None:
    # FFmpeg says 0 (or 0/0, which PyAV turns into None) for "not stated".
    return sar if sar else None


_DURATION_TAG: Final = re.compile(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


def _tag(tags: Mapping[str, str], name: str) -> str | None:
    """A stream tag by name, in any case, also with the language suffix mkvmerge adds."""
    for key, value in tags.items():
        if key.upper() in (name, f"{name}-ENG"):
            return value
    return None


def _tag_seconds(text: str | None) -> Fraction | None:
    # Matroska's per-track DURATION tag, "HH:MM:SS.nnnnnnnnn" (FFmpeg and mkvmerge write it).
    match = _DURATION_TAG.match(text.strip()) if text else None
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return (int(hours) * 3600 + int(minutes) * 60) + Fraction(seconds)


@dataclass(frozen=True)
class _Promise:
    """What the input's header promises, so a cut file is told from a whole one.

    Durations are read two ways where formats disagree: FFmpeg's stream duration counts
    from the stream's start (mp4, AVI), while Matroska's DURATION tag and segment duration,
    and FLV's, are where the stream ends. ``strict_end`` takes the later reading (to excuse
    a short frame count, it must be reached); ``lenient_end`` the earlier one (to call a
    file cut without a frame count, decoding must stop short of even that).
    """

    frames: int | None  # an exact count the container declares (mp4, AVI, mkvmerge tags)
    strict_end: Fraction | None  # the video's end, the later reading (seconds)
    lenient_end: Fraction | None  # the video's end, the earlier reading (seconds)
    container_end: Fraction | None  # the longest stream's end, the earlier reading (seconds)
    rate: Fraction | None  # nominal frames per second, for "about N frames"
    duration: Fraction | None  # the video's (else the container's) duration, seconds
    # The longest nominal frame duration the stream states (AVI's header rate counts empty
    # drop-frame chunks, so its guessed rate may be the slower, truer one); seconds.
    frame_length: Fraction = Fraction(0)

    @property
    def about(self) -> int | None:
        """The frame count the durations imply, when no exact count is declared."""
        if self.frames:
            return self.frames
        if self.duration is not None and self.rate:
            return round(self.duration * self.rate)
        return None

    def shortfall(self, decoded: int, discarded: int, video_end: Fraction | None,
                  any_end: Fraction | None) -> str | None:
        """How the decoded part falls short of the promise ("decoded 7 of 12 frames"), or None.

        An exact count decides, except that an AVI counts its empty drop-frame chunks as
        frames: a short count is excused when the video still reached its declared end.
        Without a count, times decide, with half a frame of slack for rounding: the video's
        end against the video's declared end, else the end of any stream against the
        container's duration (a whole file whose audio outlasts its video reaches it
        through the audio).
        """
        slack = Fraction(1, 2) / self.rate if self.rate else Fraction(1, 50)

        def reached(end: Fraction | None, promised: Fraction) -> bool:
            return end is not None and end >= promised - slack

        if self.frames:
            expected = self.frames - discarded  # frames an edit list cuts are never output
            if decoded >= expected or (self.strict_end is not None
                                       and reached(video_end, self.strict_end)):
                return None
            promised, count, end = self.strict_end, f"{expected}", video_end
        elif self.lenient_end is not None:
            if reached(video_end, self.lenient_end):
                return None
            promised, count, end = self.lenient_end, f"about {self.about}", video_end
        elif self.container_end is not None:
            if reached(any_end, self.container_end):
                return None
            promised, count, end = self.container_end, f"about {self.about}", any_end
        else:
            return None
        if self.about is None:
            count = "more"
        times = "" if promised is None else (
            f" (the header promises {float(promised):.3f} s of video, decoding ended at "
            f"{float(end or 0):.3f} s)")
        return f"decoded {decoded} of {count} frames{times}"


def _ends(start: Fraction | None, duration: Fraction | None
          ) -> tuple[Fraction | None, Fraction | None]:
    """(later, earlier) readings of where something that lasts ``duration`` ends."""
    if duration is None:
        return None, None
    if start is None:
        return duration, duration
    return max(duration, start + duration), min(duration, start + duration)


def _promise(container: InputContainer, video: VideoStream, rate: Fraction | None
             ) -> _Promise:
    time_base = video.time_base or Fraction(1, 90000)
    frames = video.frames or None
    counted = _tag(video.metadata, "NUMBER_OF_FRAMES")  # mkvmerge's statistics tag
    if frames is None and counted is not None and counted.isdigit():
        frames = int(counted) or None
    start = video.start_time * time_base if video.start_time is not None else None
    if video.duration:
        video_duration = video.duration * time_base
        strict_end = lenient_end = (start or 0) + video_duration  # counted from the start
    else:
        video_duration = _tag_seconds(_tag(video.metadata, "DURATION"))
        strict_end, lenient_end = _ends(start, video_duration)
    duration = container_end = None
    if container.duration is not None:
        duration = Fraction(container.duration, av.time_base)
        container_start = (Fraction(container.start_time, av.time_base)
                           if container.start_time is not None else None)
        container_end = _ends(container_start, duration)[1]
    if lenient_end is not None and start is not None:
        video_duration = lenient_end - start  # the span, whichever reading the format uses
    rates = [r for r in (video.average_rate, video.guessed_rate) if r]
    return _Promise(frames, strict_end, lenient_end, container_end, rate,
                    video_duration if video_duration is not None else duration,
                    max((1 / r for r in rates), default=Fraction(0)))


@dataclass(frozen=True)
class _Picture:
    """What the first decoded frame says that RGB Frames cannot carry."""

    alpha: bool  # the pixel format has an alpha channel
    mastering: bytes | None  # AVMasteringDisplayMetadata (HDR mastering display)
    light: bytes | None  # AVContentLightMetadata (MaxCLL, MaxFALL)
    field_order: int  # AVFieldOrder: 0 unknown, 1 progressive, 2-5 interlaced orders


_AV_FIELD_PROGRESSIVE: Final = 1
_AV_FIELD_TT: Final = 2  # top field coded and shown first
_FIELD_NAMES: Final = {2: "top field first", 3: "bottom field first",
                       4: "top field coded first, bottom shown first",
                       5: "bottom field coded first, top shown first"}


def _picture(frame: av.VideoFrame, ctx: av.codec.context.CodecContext) -> _Picture:
    side = {item.type: bytes(item) for item in frame.side_data}
    # An interlaced frame of unstated order is taken as top field first, the usual order
    # (PyAV does not expose the frame's own top-field-first flag).
    order = ctx.field_order if ctx.field_order in _FIELD_NAMES else (
        _AV_FIELD_TT if frame.interlaced_frame else _AV_FIELD_PROGRESSIVE)
    return _Picture(
        alpha=any(c.is_alpha for c in frame.format.components),
        mastering=side.get(SideDataType.MASTERING_DISPLAY_METADATA),
        light=side.get(SideDataType.CONTENT_LIGHT_LEVEL),
        field_order=int(order),
    )


@dataclass
class _Opened:
    """An input file read up to its first decoded video frame, ready to continue."""

    container: InputContainer
    video: VideoStream
    copied: tuple[Stream, ...]
    info: VideoInfo
    display_matrix: tuple[int, ...] | None
    packets: Iterator[av.Packet]  # the demux in progress: the rest of the file
    backlog: list[av.VideoFrame | av.Packet]  # read so far, in the order to hand out
    discarded: int  # video packets read so far that an edit list cuts
    promise: _Promise
    timecode: str | None  # start timecode (mov/mp4 tmcd track or a timecode tag)
    picture: _Picture


def _open_video(path: Path) -> _Opened:
    """Open ``path``, pick its streams and decode up to the first frame; MediaError if not.

    Source keeps the open container and carries on from here, so a file is opened (and
    its streams probed) once, and what Source decodes is the very file that was probed.
    Packets of copied streams read before that frame are kept in order in the backlog;
    demuxers interleave by time, so that is whatever precedes the first frame's time.
    """
    container = _open_input(path)
    try:
        return _read_first_frame(container, path)
    except BaseException:
        container.close()
        raise


def _read_first_frame(container: InputContainer, path: Path) -> _Opened:
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
                if packet.stream.index in wanted and _is_payload(packet):
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
        raise MediaError(f"{path}: corrupt video stream ({_ffmpeg_reason(err)})") from None
    if frame is None:
        raise MediaError(f"{path}: the video stream has no decodable frame")

    ctx = video.codec_context
    time_base = video.time_base or Fraction(1, 90000)
    rate = video.average_rate or video.guessed_rate or None
    promise = _promise(container, video, rate)
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
        bit_depth=_bit_depth(pix_fmt),
        rotation=frame.rotation,
        color_range=int(frame.color_range or ctx.color_range),
        colorspace=int(frame.colorspace if frame.colorspace != _UNSPECIFIED
                       else ctx.colorspace),
        color_primaries=int(frame.color_primaries if frame.color_primaries != _UNSPECIFIED
                            else ctx.color_primaries),
        color_trc=int(frame.color_trc if frame.color_trc != _UNSPECIFIED
                      else ctx.color_trc),
        copied_streams=tuple(_stream_label(s) for s in copied),
        # The container's value wins over the bitstream's, as in every player
        # (av_guess_sample_aspect_ratio); the decoder's covers codecs whose
        # parameters only say it once a frame is decoded.
        sample_aspect_ratio=_known_sar(video.sample_aspect_ratio)
        or _known_sar(ctx.sample_aspect_ratio),
    )
    return _Opened(container, video, tuple(copied), info, _display_matrix(frame), packets,
                   backlog, discarded, promise, timecode, _picture(frame, ctx))


def probe(path: Path) -> VideoInfo:
    """Describe the video in ``path``; MediaError if it is missing, not media or broken."""
    opened = _open_video(Path(path))
    opened.container.close()
    return opened.info


# ---------------------------------------------------------------------------
# Threads and queues shared by Source and Sink
# ---------------------------------------------------------------------------

_POLL_S: Final = 0.05  # how often a blocked thread re-checks that it should stop


class _End:
    """Queue marker: the producer has nothing more to send."""


_END: Final = _End()


@dataclass(frozen=True)
class _Copy:
    """A packet to remux and the output stream it belongs to."""

    packet: av.Packet
    stream: Stream


@dataclass(frozen=True)
class _Failure:
    """Carries an exception from a worker thread to the thread that must raise it."""

    error: BaseException


def _join(thread: threading.Thread) -> None:
    """Join even if Ctrl-C arrives meanwhile: FFmpeg state must not be freed under a worker."""
    interrupted: KeyboardInterrupt | None = None
    while thread.is_alive():
        try:
            thread.join(_POLL_S)
        except KeyboardInterrupt as err:
            interrupted = err
    if interrupted is not None:
        raise interrupted


# ---------------------------------------------------------------------------
# Source: demux + decode on a thread
# ---------------------------------------------------------------------------


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
        opened = _open_video(Path(path))
        self.info: VideoInfo = opened.info
        self._container = opened.container
        self._video = opened.video
        self._copied = opened.copied
        self._display_matrix = opened.display_matrix
        self._packets = opened.packets
        self._backlog = opened.backlog
        self._discarded = opened.discarded
        self._promise = opened.promise
        self._timecode = opened.timecode
        self._picture = opened.picture
        # Snapshots, so Sink can read them while the decode thread owns the container.
        self._chapters = tuple(MappingProxyType(dict(c)) for c in self._container.chapters())
        self._metadata = MappingProxyType(dict(self._container.metadata))
        self._video_metadata = MappingProxyType(dict(self._video.metadata))
        self._video_disposition = self._video.disposition
        self._deep = self.info.bit_depth > 8
        self._reformatter = VideoReformatter()  # used by the decode thread only
        self._queue: queue.Queue[Frame | av.Packet | _Failure | _End] = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vstpipe-decode", daemon=True)
        self._started = False
        self._closed = False

    # -- what Sink carries over ---------------------------------------------

    @property
    def display_matrix(self) -> tuple[int, ...] | None:
        """The input's 3x3 display matrix (rotation and flips) as 9 int32s, or None."""
        return self._display_matrix

    @property
    def copied_streams(self) -> tuple[Stream, ...]:
        """The input streams that items() passes through as packets (audio, subtitles, data,
        cover art, further video streams; attachments, which have no packets, too).

        Valid only while the Source is open; read their settings, do not demux or decode.
        """
        return self._copied

    @property
    def video_index(self) -> int:
        """The index of the stylized video stream in the input file."""
        return self._video.index

    @property
    def chapters(self) -> tuple[Mapping[str, object], ...]:
        """The input's chapters as PyAV describes them (id, start, end, time_base, metadata)."""
        return self._chapters

    @property
    def timecode(self) -> str | None:
        """The start timecode ("01:02:03:04") of a tmcd track or a timecode tag, or None."""
        return self._timecode

    @property
    def has_alpha(self) -> bool:
        """Whether the video has an alpha channel, which the RGB frames do not carry."""
        return self._picture.alpha

    @property
    def mastering_display(self) -> bytes | None:
        """HDR mastering display metadata (AVMasteringDisplayMetadata bytes), or None."""
        return self._picture.mastering

    @property
    def content_light(self) -> bytes | None:
        """HDR content light level (AVContentLightMetadata bytes: MaxCLL, MaxFALL), or None."""
        return self._picture.light

    @property
    def field_order(self) -> int:
        """FFmpeg's AVFieldOrder of the video: 0 unknown, 1 progressive, 2-5 interlaced."""
        return self._picture.field_order

    @property
    def metadata(self) -> Mapping[str, str]:
        """Container-level tags of the input (title, comment, creation_time ...)."""
        return self._metadata

    @property
    def video_metadata(self) -> Mapping[str, str]:
        """Tags of the input video stream (language, title, handler_name ...)."""
        return self._video_metadata

    @property
    def video_disposition(self) -> Disposition:
        """Flags of the input video stream (default, forced ...)."""
        return self._video_disposition

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
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if isinstance(item, _End):
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            self._halt()

    def close(self) -> None:
        """Stop the decode thread (if running) and release the file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._halt()
        finally:
            # _halt ends only once the worker has, even when a second Ctrl-C cuts it
            # short (see _join), so the demuxer is never freed under the thread.
            self._backlog = []
            self._container.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _halt(self) -> None:
        self._stop.set()
        try:
            self._drain()
        finally:
            _join(self._thread)  # returns at once if the thread never started

    def _drain(self) -> None:
        # Frees queued frames at once rather than whenever the worker notices the stop.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    # -- producer side (decode thread) -------------------------------------

    def _put(self, item: Frame | av.Packet | _Failure | _End) -> bool:
        """Block until queued; False when the consumer asked us to stop."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False

    def _run(self) -> None:
        try:
            self._pump()
        except BaseException as err:  # noqa: BLE001 - every failure must reach the consumer
            self._put(_Failure(err))
        finally:
            self._put(_END)

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
        return Frame(_to_rgb(self._reformatter, vframe, self._deep), pts, self.info.time_base)

    def _pump(self) -> None:
        path = self.info.path
        video = self._video
        copied = {s.index for s in self._copied}
        reading = _Reading(self.info.time_base, self._promise.frame_length,
                           discarded=self._discarded)
        order = _DisplayOrder()

        def emit(vframe: av.VideoFrame) -> bool:
            reading.saw_frame(vframe)
            for ready, pts in order.push(vframe, video.codec_context.reorder_depth):
                if not self._put(self._frame(ready, pts)):
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
                if not self._put(item):
                    return
        del backlog  # decoded frames are large; do not keep them for the whole file
        packets = self._packets
        damage: str | None = None  # a decode or read error: fatal unless the file ends there
        while not self._stop.is_set():
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as err:
                # A cut file often ends in a half-written packet the demuxer cannot parse.
                damage = damage or (f"read error after video pts {reading.last_pts} "
                                    f"({_ffmpeg_reason(err)})")
                break
            index = packet.stream.index
            if index != video.index:
                if index in copied and _is_payload(packet):
                    reading.saw_packet(packet)
                    if not self._put(packet):
                        return
                continue
            if damage is not None and _is_payload(packet):
                # More video follows the damaged packet: the file is damaged, not cut.
                raise MediaError(f"{path}: {damage}")
            if packet.is_discard:
                reading.discarded += 1
            try:
                frames = video.decode(packet if packet.size else None)
            except av.error.FFmpegError as err:
                damage = damage or (f"decode error near video pts {packet.pts} "
                                    f"({_ffmpeg_reason(err)})")
                continue
            for vframe in frames:
                if not emit(vframe):
                    return
        if self._stop.is_set():
            return
        for ready, pts in order.flush():
            if not self._put(self._frame(ready, pts)):
                return
        self._check_complete(reading, damage)

    def _check_complete(self, reading: _Reading, damage: str | None) -> None:
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
            raise MediaError(f"{message}; --allow-partial renders what decodes")
        _log.warning("%s; keeping the %d frames that decoded (partial input allowed)",
                     message, reading.decoded)


@dataclass
class _Reading:
    """How far the decode thread got, for the check against the header's promise."""

    time_base: Fraction  # of the video's pts
    frame_length: Fraction  # the longest nominal frame duration (seconds), see _Promise
    discarded: int = 0  # video packets the container marks as cut by an edit list
    decoded: int = 0
    last_pts: int | None = None  # as decoded, for messages
    video_end: Fraction | None = None  # end time of the latest video frame (seconds)
    any_end: Fraction | None = None  # end time of the latest frame or copied packet

    def saw_frame(self, frame: av.VideoFrame) -> None:
        self.decoded += 1
        self.last_pts = frame.pts
        if frame.pts is None:
            return
        time_base = self.time_base
        # At least one nominal frame: AVI says one tick even where empty drop-frame
        # chunks stretch a frame, and many files leave the last frame's duration unstated.
        length = max(frame.duration * time_base if frame.duration else Fraction(0),
                     self.frame_length)
        end = frame.pts * time_base + length
        self.video_end = end if self.video_end is None else max(self.video_end, end)
        self._reach(end)

    def saw_packet(self, packet: av.Packet) -> None:
        if packet.pts is None or packet.time_base is None:
            return
        self._reach((packet.pts + (packet.duration or 0)) * packet.time_base)

    def _reach(self, end: Fraction) -> None:
        self.any_end = end if self.any_end is None else max(self.any_end, end)


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


# ---------------------------------------------------------------------------
# Sink: encode + remux on a thread, temp file renamed on success
# ---------------------------------------------------------------------------

# Muxer per output suffix, set explicitly because the temp file ends in ".part".
_MUXERS: Final = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}


def check_output_path(src: Path, out: Path, overwrite: bool) -> None:
    """OutputError if writing ``out`` would clobber the input or an unrequested file.

    The early, friendly check; the Sink claims ``out`` atomically at the end as well
    (atomic.TempOutput.commit), so a file that appears there meanwhile is never replaced.
    """
    src, out = Path(src), Path(out)
    if (out.exists() and src.exists() and os.path.samefile(src, out)) or \
            out.resolve() == src.resolve():
        raise OutputError(f"{out}: is the input file itself; choose another output path")
    atomic.check_target(out, overwrite=overwrite)


def _muxer_for(out: Path) -> str:
    fmt = _MUXERS.get(out.suffix.lower())
    if fmt is None:
        raise OutputError(f"{out}: unsupported output extension {out.suffix or '(none)'!r}; "
                          f"valid: {', '.join(_MUXERS)}")
    return fmt


def _pick_pix_fmt(codec: av.Codec, bit_depth: int, width: int, height: int) -> str:
    """Default output pixel format: the source depth, subsampled as far as the size allows.

    Our preferences come first, then anything else the encoder takes, closest depth
    first; the first whose chroma subsampling fits ``width`` x ``height`` wins.
    """
    deep = bit_depth > 8
    if codec.name == "prores_ks":
        preferred = ["yuv422p10le", "yuv444p10le"]  # ProRes is 10-bit 4:2:2 or 4:4:4
    elif deep:
        preferred = ["yuv420p10le", "yuv444p10le", "yuv422p10le", "gbrp10le", "yuv420p16le"]
    else:
        preferred = ["yuv420p", "yuv444p"]
    preferred = list(dict.fromkeys([*preferred, "yuv420p", "yuv444p"]))
    supported = _encoder_pix_fmts(codec)
    if supported:
        depth = 10 if deep else 8
        others = sorted((n for n in supported if n not in preferred),
                        key=lambda n: abs(_bit_depth(n) - depth))
        candidates = [n for n in preferred if n in supported] + others
    else:
        candidates = preferred  # the encoder negotiates at open time; try the usual
    for name in candidates:
        if _fits_size(name, width, height):
            return name
    return candidates[0]  # nothing fits: Sink's size check names the way out


def _needs_even_size(pix_fmt: str) -> tuple[bool, bool]:
    """Whether chroma subsampling requires an even (width, height)."""
    fmt = av.VideoFormat(pix_fmt, 16, 16)
    chroma = [c for c in fmt.components if c.is_chroma]
    if not chroma:
        return False, False
    return chroma[0].width < 16, chroma[0].height < 16


def _fits_size(pix_fmt: str, width: int, height: int) -> bool:
    even_w, even_h = _needs_even_size(pix_fmt)
    return not (even_w and width % 2) and not (even_h and height % 2)


def _size_hint(codec: av.Codec, width: int, height: int) -> str:
    """What to do instead when the pixel format cannot hold an odd size, for ``codec``."""
    supported = _encoder_pix_fmts(codec)
    fits = [n for n in supported if _fits_size(n, width, height)]
    if fits:
        return f"{codec.name} accepts {', '.join(fits)} at that size"
    if supported:
        return f"{codec.name} has no pixel format for it; choose an even --size or --codec ffv1"
    return "choose an even --size or a 4:4:4 pixel format"


def _output_sar(sar: Fraction | None, src: tuple[int, int],
                out: tuple[int, int]) -> Fraction | None:
    """The SAR that shows an ``out``-sized picture at ``src``'s display aspect ratio."""
    if out == src:
        return sar
    # DAR = W * SAR / H must not change. A file that states no SAR has square pixels,
    # and resizing it to another shape still must not stretch the picture.
    scaled = (sar or Fraction(1)) * Fraction(src[0] * out[1], src[1] * out[0])
    if sar is None and scaled == 1:
        return None
    # H.264/HEVC store each term in 16 bits (x264 would halve both until they fit);
    # odd sizes can exceed that, so take the closest ratio that fits instead.
    if scaled >= 1:
        return 1 / (1 / scaled).limit_denominator(0xFFFF)
    return scaled.limit_denominator(0xFFFF)


# Matroska takes its display size from a field PyAV cannot set, so there only the
# video bitstream keeps a non-square SAR; these encoders write it there (checked).
_SAR_IN_BITSTREAM: Final = frozenset({"libx264", "libx265", "mpeg4"})
# Of the re-encoded video stream, only these tags still describe it; handler_name,
# vendor_id and encoder name the old file's writer.
_VIDEO_TAGS: Final = ("language", "title")
# Container tags the muxer writes for itself (compared lower-case: Matroska's are upper).
_MUXER_TAGS: Final = frozenset({"encoder", "major_brand", "minor_version", "compatible_brands"})


def _stream_tags(tags: Mapping[str, str]) -> dict[str, str]:
    out = dict(tags)
    # The mov/mp4 demuxer reports a track title (udta 'name') as "name", but every
    # muxer reads "title"; renamed, a title survives mp4 -> mp4 and mp4 -> mkv.
    if "name" in out and "title" not in out:
        out["title"] = out.pop("name")
    return out


# ---------------------------------------------------------------------------
# What the output keeps besides the stylized video, decided before frame one
# ---------------------------------------------------------------------------

# Which muxers keep each optional part; the others drop it with one notice. Matroska
# keeps cover art as an attachment (as its demuxer presents one); mov ignores it silently.
_KEEPS_CHAPTERS: Final = frozenset({"matroska", "webm", "mp4", "mov"})
_KEEPS_ATTACHMENTS: Final = frozenset({"matroska"})
_KEEPS_COVER_STREAM: Final = frozenset({"mp4"})
_KEEPS_TIMECODE: Final = frozenset({"matroska", "webm", "mp4", "mov"})  # mov/mp4: a tmcd track
_KEEPS_FIELD_ORDER: Final = frozenset({"matroska", "webm", "mp4", "mov"})
# Encoders that code fields themselves, so interlacing survives any container.
_INTERLACED_ENCODERS: Final = frozenset({"libx264", "mpeg4", "prores_ks"})
# Encoders that write the colour range into the bitstream (AVI has no field for it).
_RANGE_IN_BITSTREAM: Final = frozenset({"libx264", "libx265", "libvpx-vp9", "libsvtav1"})
_HDR_ENCODERS: Final = ("libx264", "libx265")  # write mastering display / light level SEI
_KEEPING_CONTAINERS: Final = ".mkv, .mp4 or .mov"
# AVI has no per-stream start offset; beyond this, audio would drift from the picture.
# 40 ms is about one frame and under what viewers notice (audio early by 45 ms, ITU-R BT.1359).
_AVI_SYNC_TOLERANCE: Final = Fraction(40, 1000)
_IDENTITY_MATRIX: Final = (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)
# Packets read to find each copied stream's first packet for the rehearsal; a sparse
# subtitle stream with none this early is rehearsed without one.
_REHEARSAL_PACKETS: Final = 2000
_COVER_TYPES: Final = {"mjpeg": ("jpg", "image/jpeg"), "png": ("png", "image/png"),
                       "bmp": ("bmp", "image/bmp"), "gif": ("gif", "image/gif"),
                       "webp": ("webp", "image/webp")}


@dataclass(frozen=True)
class _Plan:
    """What goes into the output next to the stylized video, and what is dropped."""

    copies: tuple[Stream, ...]  # input streams copied as they are
    covers: tuple[tuple[str, str, bytes], ...]  # cover art as (name, mimetype, data) attachments
    skipped: frozenset[int]  # input stream indexes whose packets are not written
    chapters: tuple[dict[str, object], ...]
    timecode: str | None  # written as the video stream's timecode tag
    encoder_params: str | None  # HDR mastering / light level for the x264/x265 params
    field_order: int  # AVFieldOrder to write; 0 = none
    interlaced_coding: bool  # the encoder codes fields (libx264, mpeg4, prores)
    dropped: tuple[str, ...]  # what this container or encoder cannot keep, for one notice
    avi_origin: Fraction | None  # AVI only: time of the first frame, pts 0 on its grid


def _muxer_refusal(fmt: str, stream: Stream, packet: av.Packet | None,
                   options: dict[str, str]) -> str | None:
    """Why a ``fmt`` file cannot hold a copy of ``stream``, or None if it can.

    A rehearsal in memory: header, the stream's first packet, trailer. Muxers refuse some
    streams only when packets arrive or at the trailer (mov: a bare tmcd track), which in
    the real file would be after the whole render.
    """
    container = av.open(io.BytesIO(), "w", format=fmt, options=options)
    reason: str | None = None
    try:
        out = container.add_stream_from_template(stream)
        out.metadata.update(_stream_tags(stream.metadata))
        out.disposition = stream.disposition
        container.start_encoding()
        if packet is not None:
            packet.stream = out
            container.mux_one(packet)
    except (ValueError, av.error.FFmpegError) as err:
        reason = _ffmpeg_reason(err)
    try:
        container.close()  # the trailer
    except (av.error.FFmpegError, OSError) as err:
        reason = reason or _ffmpeg_reason(err)
    return reason


def _first_packets(path: Path, streams: tuple[Stream, ...]) -> dict[int, av.Packet]:
    """The first payload packet of each stream (by index) in a fresh read of ``path``."""
    wanted = {s.index for s in streams if s.type != "attachment"}
    found: dict[int, av.Packet] = {}
    if not wanted:
        return found
    with av.open(str(path), "r", metadata_errors="replace") as container:
        demux = container.demux([container.streams[i] for i in sorted(wanted)])
        try:
            for n, packet in enumerate(demux):
                index = packet.stream.index
                if index in wanted and index not in found and _is_payload(packet):
                    found[index] = packet
                if len(found) == len(wanted) or n >= _REHEARSAL_PACKETS:
                    break
        except av.error.FFmpegError:
            # A damaged file: the Source reports that with frame counts; rehearse what we have.
            return found
    return found


def _video_times(path: Path, index: int) -> list[Fraction]:
    """Presentation times (s) of every video packet, read without decoding (for AVI).

    One more pass over the file, but demuxing only: only AVI output needs it.
    """
    with av.open(str(path), "r", metadata_errors="replace") as container:
        stream = container.streams[index]
        times = []
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None and not packet.is_discard:
                    times.append(packet.pts * packet.time_base)
        except av.error.FFmpegError:
            # A cut file: the Source reports it with frame counts; judge what was read.
            return sorted(times)
        return sorted(times)


def _check_avi(source: Source, out: Path) -> Fraction:
    """OutputError unless AVI can keep this video's timing; returns its first frame's time.

    AVI stores one frame per tick of a constant rate and no start offset per stream, and
    FFmpeg writes no display matrix into it. Rather than lose rotation, variable frame
    timing or A/V sync with exit 0, refuse before frame one and name what keeps them.
    """
    info = source.info
    matrix = source.display_matrix
    if matrix is not None and tuple(matrix) != _IDENTITY_MATRIX:
        raise OutputError(f"{out}: an AVI file cannot store the input's display rotation "
                          f"({info.rotation} degrees) or flip; use {_KEEPING_CONTAINERS}")
    rate = info.average_rate
    times = _video_times(info.path, source.video_index)
    if not rate or not times:
        raise OutputError(f"{out}: the input states no frame rate, which an AVI file needs; "
                          f"use {_KEEPING_CONTAINERS}")
    origin = times[0]
    # One tick of the input's own time base is its rounding; Matroska rounds to 1 ms.
    slack = info.time_base
    slots = set()
    for t in times:
        slot = round((t - origin) * rate)
        if abs(t - origin - slot / rate) > slack or slot in slots:
            raise OutputError(
                f"{out}: an AVI file stores a constant frame rate, but this video's frame "
                f"times vary (a frame at {float(t):.3f} s is off the {float(rate):g} fps grid); "
                f"use {_KEEPING_CONTAINERS}, which keep every frame time")
        slots.add(slot)
    for stream in source.copied_streams:
        if stream.type != "audio" or stream.start_time is None:
            continue
        offset = stream.start_time * stream.time_base - origin
        if abs(offset) > _AVI_SYNC_TOLERANCE:
            when = "after" if offset > 0 else "before"
            raise OutputError(
                f"{out}: an AVI file cannot store when each stream starts, and audio stream "
                f"#{stream.index} starts {abs(float(offset)):.3f} s {when} the video; "
                f"use {_KEEPING_CONTAINERS} to keep them in sync")
    return origin


def _hdr_params(codec: str, mastering: bytes | None, light: bytes | None) -> str | None:
    """x264/x265 parameters that write the input's HDR mastering metadata, or None."""
    parts = []
    if mastering is not None and len(mastering) >= 88:
        # AVMasteringDisplayMetadata: primaries R, G, B and white point (x, y), min and
        # max luminance as int32 num/den pairs, then has_primaries, has_luminance.
        values = np.frombuffer(mastering[:88], dtype=np.int32)
        ratios = [Fraction(int(n), int(d)) if d else Fraction(0)
                  for n, d in values[:20].reshape(-1, 2)]
        if values[20] and values[21]:
            (rx, ry, gx, gy, bx, by, wx, wy), (lo, hi) = ratios[:8], ratios[8:10]
            chroma = [round(v * 50000) for v in (gx, gy, bx, by, rx, ry, wx, wy)]
            display = ("G({},{})B({},{})R({},{})WP({},{})".format(*chroma)
                       + f"L({round(hi * 10000)},{round(lo * 10000)})")
            parts.append(("mastering-display=" if codec == "libx264" else "master-display=")
                         + display)
    if light is not None and len(light) >= 8:
        max_cll, max_fall = (int(v) for v in np.frombuffer(light[:8], dtype=np.uint32))
        parts.append(("cll=" if codec == "libx264" else "max-cll=") + f"{max_cll},{max_fall}")
    return ":".join(parts) or None


def _cover_attachment(stream: Stream, packet: av.Packet | None
                      ) -> tuple[str, str, bytes] | None:
    """Cover art as a Matroska attachment (name, mimetype, data), if its format is known."""
    codec = stream.codec_context.name if stream.codec_context is not None else ""
    name, mimetype = stream.metadata.get("filename"), stream.metadata.get("mimetype")
    if codec in _COVER_TYPES and packet is not None:
        ext, default_type = _COVER_TYPES[codec]
        return name or f"cover.{ext}", mimetype or default_type, bytes(packet)
    return None


def _plan(source: Source, fmt: str, codec: str, out: Path, full_range: bool,
          options: dict[str, str]) -> _Plan:
    """Decide, before frame one, what the ``fmt`` output keeps; OutputError/MediaError if
    it must not be written at all (AVI losing timing; a stream the muxer refuses)."""
    avi_origin = _check_avi(source, out) if fmt == "avi" else None
    dropped: list[str] = []
    copies: list[Stream] = []
    covers: list[tuple[str, str, bytes]] = []
    skipped: set[int] = set()
    first = _first_packets(source.info.path, source.copied_streams)
    for stream in source.copied_streams:
        packet = first.get(stream.index)
        name = f"#{stream.index} ({_stream_label(stream)})"
        if stream.type == "attachment":
            kind, keeps = f"attachment {stream.metadata.get('filename') or name}", \
                fmt in _KEEPS_ATTACHMENTS
        elif stream.type == "video" and stream.disposition & Disposition.attached_pic:
            kind = f"cover art {name}"
            if fmt in _KEEPS_ATTACHMENTS and (cover := _cover_attachment(stream, packet)):
                covers.append(cover)
                skipped.add(stream.index)
                continue
            keeps = fmt in _KEEPS_COVER_STREAM
        elif stream.type == "video":
            kind, keeps = f"video stream {name}", True
        else:
            reason = _muxer_refusal(fmt, stream, packet, options)
            if reason is not None:
                raise MediaError(f"{source.info.path}: stream {name} cannot be copied into "
                                 f"a {fmt} file ({out.name}: {reason}); choose another "
                                 f"container")
            copies.append(stream)
            continue
        if keeps and _muxer_refusal(fmt, stream, packet, options) is None:
            copies.append(stream)
        else:
            dropped.append(kind)
            skipped.add(stream.index)
    chapters = tuple(dict(c) for c in source.chapters)
    if chapters and fmt not in _KEEPS_CHAPTERS:
        dropped.append(f"{len(chapters)} chapters")
        chapters = ()
    timecode = source.timecode
    if timecode and fmt not in _KEEPS_TIMECODE:
        dropped.append(f"timecode {timecode}")
        timecode = None
    params = None
    if source.mastering_display or source.content_light:
        if codec in _HDR_ENCODERS:
            params = _hdr_params(codec, source.mastering_display, source.content_light)
        else:
            dropped.append(f"HDR mastering metadata ({codec} cannot write it; "
                           f"{' or '.join(_HDR_ENCODERS)} can)")
    order = source.field_order if source.field_order in _FIELD_NAMES else 0
    coded = bool(order) and codec in _INTERLACED_ENCODERS
    if order and not coded and fmt not in _KEEPS_FIELD_ORDER:
        dropped.append(f"interlacing ({_FIELD_NAMES[order]})")
        order = 0
    if full_range and fmt == "avi" and codec not in _RANGE_IN_BITSTREAM:
        dropped.append(f"full colour range ({codec} in AVI cannot state it)")
    if source.has_alpha:
        dropped.append(f"the alpha channel ({source.info.pix_fmt}: stylized frames are opaque)")
    return _Plan(tuple(copies), tuple(covers), frozenset(skipped), chapters, timecode,
                 params, order, coded, tuple(dropped), avi_origin)


class Sink:
    """Encodes Frames and remuxes packets into a locked temp file beside ``out``; claims ``out``
    at the end (atomic.TempOutput), so nothing appears there unless everything succeeded.

    Everything the output cannot keep is decided before frame one: a refusal (a stream the
    muxer rejects, AVI losing frame times, sync or rotation) raises; anything dropped with
    the output still sound (cover art, attachments, chapters, timecode, HDR metadata,
    interlacing, colour range, alpha in a container or encoder without room for it) is
    named in one warning.
    """

    def __init__(self, out: Path, source: Source, options: EncodeOptions, overwrite: bool) -> None:
        self.out = Path(out)
        check_encode_options(options)
        check_output_path(source.info.path, self.out, overwrite)
        fmt = _muxer_for(self.out)
        info = source.info
        codec = _encoder(options.codec)
        width, height = options.size or (info.width, info.height)
        pix_fmt = options.pix_fmt or _pick_pix_fmt(codec, info.bit_depth, width, height)
        if not _fits_size(pix_fmt, width, height):
            raise OptionError(f"{self.out}: pixel format {pix_fmt} needs an even width and "
                              f"height, got {width}x{height}; "
                              f"{_size_hint(codec, width, height)}")
        self._width, self._height = width, height
        self._color = _output_color(info, pix_fmt)
        self.pix_fmt: str = pix_fmt  # what the encoder receives
        # Callers hand uint16 frames when this is > 8, so the extra precision reaches the file.
        self.bit_depth: int = _bit_depth(pix_fmt)
        self._source_path = info.path
        rate = info.average_rate or Fraction(25)
        # Matroska cannot start a track before 0 unless told to write negative block
        # times (which its format allows); otherwise AAC priming (first audio pts < 0)
        # makes the muxer shift every stream, and video pts would no longer match.
        # AVI has no start times at all: every stream plays from its first packet, so a
        # shift would only move the video (whole frames at a time) against the audio.
        container_opts = {"avoid_negative_ts": "disabled"} \
            if fmt in ("matroska", "webm", "avi") else {}
        full_range = self._color.color_range == ColorRange.JPEG and self._color.colorspace != 0
        plan = _plan(source, fmt, codec.name, self.out, full_range, container_opts)
        self._plan = plan
        # Same time base as the input so every input pts maps 1:1 onto an output pts, which
        # keeps variable frame rates; AVI counts frames at its constant rate instead.
        self._time_base = info.time_base if plan.avi_origin is None else 1 / rate
        # A frame without pts gets the previous one plus one nominal frame duration.
        self._pts_step = max(1, round(1 / (rate * self._time_base)))
        self._last_pts: int | None = None
        self._frames_written = 0
        self._reformatter = VideoReformatter()  # used by the encode thread only

        # Locked, uniquely named, within the name limit; sweeps a killed run's leftovers.
        self._tmp = atomic.TempOutput(self.out, overwrite=overwrite)
        self._container_open = False
        try:
            self._container: OutputContainer = av.open(str(self._tmp.path), "w", format=fmt,
                                                       options=container_opts)
        except (av.error.FFmpegError, OSError) as err:
            self._tmp.discard()
            raise OutputError(f"{self.out}: cannot open for writing "
                              f"({_ffmpeg_reason(err)})") from None
        self._container_open = True
        try:
            self._video = self._add_video(codec, options, source, rate)
            self._copy_map = self._add_copies(source, fmt)
            for name, mimetype, data in plan.covers:
                self._container.add_attachment(name, mimetype, data)
            if plan.chapters:
                self._container.set_chapters(list(plan.chapters))
            self._container.metadata.update(
                {k: v for k, v in source.metadata.items() if k.lower() not in _MUXER_TAGS})
            self._start(fmt)
        except BaseException:
            self._discard()
            raise
        if plan.dropped:
            # One line, before frame one, naming all of it.
            _log.warning("%s: not kept in %s: %s", self.out,
                         _kept_where(fmt, codec.name), "; ".join(plan.dropped))

        self._queue: queue.Queue[Frame | _Copy | _End] = queue.Queue(8)
        self._abort = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vstpipe-encode", daemon=True)
        self._thread.start()
        self._done = False

    # -- setup --------------------------------------------------------------

    def _add_video(self, codec: av.Codec, options: EncodeOptions, source: Source,
                   rate: Fraction) -> VideoStream:
        container = self._container
        encoder_opts: dict[str, str] = {}
        if codec.name in _CRF_ENCODERS:
            encoder_opts["crf"] = str(options.crf)
        plan = self._plan
        if codec.name == "libx265":
            # x265 logs to stderr otherwise.
            encoder_opts["x265-params"] = ":".join(
                p for p in ("log-level=error", plan.encoder_params) if p)
        elif plan.encoder_params:
            encoder_opts["x264-params"] = plan.encoder_params
        try:
            stream = container.add_stream(codec.name, rate=rate, options=encoder_opts)
        except ValueError:
            fits = [ext for ext, muxer in _MUXERS.items()
                    if codec.name in _supported_codecs(muxer)]
            raise OptionError(f"{self.out}: a {container.format.name} file cannot hold "
                              f"{options.codec} video; use one of {', '.join(fits) or '?'}"
                              ) from None
        ctx = stream.codec_context
        ctx.width, ctx.height = self._width, self._height
        ctx.pix_fmt = self.pix_fmt
        ctx.time_base = self._time_base  # see __init__
        stream.time_base = self._time_base
        ctx.thread_type = "AUTO"
        if container.format.name == "avi":
            # AVI stores decode order only, with no presentation timestamps, so reordered
            # (B) frames come back with scrambled pts. mp4/mov/mkv keep pts, so B-frames
            # stay on there.
            ctx.max_b_frames = 0
        if plan.field_order:
            ctx.field_order = plan.field_order
            if plan.interlaced_coding:
                ctx.flags |= Flags.interlaced_dct | Flags.interlaced_me
        ctx.colorspace = self._color.colorspace
        ctx.color_range = self._color.color_range
        ctx.color_primaries = self._color.color_primaries
        ctx.color_trc = self._color.color_trc
        if source.display_matrix is not None:
            # The raw matrix (not just the angle) so flips survive too.
            stream.set_display_matrix(source.display_matrix)
        info = source.info
        sar = _output_sar(info.sample_aspect_ratio, (info.width, info.height),
                          (self._width, self._height))
        if sar is not None:
            ctx.sample_aspect_ratio = sar
            if (sar != 1 and container.format.name in ("matroska", "webm")
                    and codec.name not in _SAR_IN_BITSTREAM):
                _log.warning("%s: %s cannot store the %s pixel aspect ratio in a %s file; "
                             "it will play with square pixels (use .mp4/.mov or libx264)",
                             self.out, codec.name, sar, container.format.name)
        tags = _stream_tags(source.video_metadata)
        stream.metadata.update({k: tags[k] for k in _VIDEO_TAGS if k in tags})
        if plan.timecode:
            # mov/mp4 turn this tag into a tmcd track; Matroska keeps it as TIMECODE.
            stream.metadata["timecode"] = plan.timecode
        stream.disposition = source.video_disposition
        return stream

    def _add_copies(self, source: Source, fmt: str) -> dict[int, Stream]:
        mapping: dict[int, Stream] = {}
        for stream in self._plan.copies:
            try:
                out = self._container.add_stream_from_template(stream)
            except ValueError:
                raise MediaError(f"{source.info.path}: stream #{stream.index} "
                                 f"({_stream_label(stream)}) cannot be copied into a "
                                 f"{fmt} file ({self.out.name}); choose another container"
                                 ) from None
            # The template carries codec parameters only; language, title and flags
            # such as default/forced/commentary are what players pick tracks by.
            out.metadata.update(_stream_tags(stream.metadata))
            out.disposition = stream.disposition
            mapping[stream.index] = out
        return mapping

    def _start(self, fmt: str) -> None:
        # Open the encoder and write the header now, so bad settings or streams the
        # muxer rejects fail before any decoding work is spent.
        try:
            self._video.codec_context.open()
        except av.error.FFmpegError as err:
            raise OptionError(
                f"{self.out}: encoder {self._video.codec_context.name} rejected "
                f"{self._width}x{self._height} {self.pix_fmt} at time base "
                f"{self._time_base} ({_ffmpeg_reason(err)})") from None
        try:
            self._container.start_encoding()
        except av.error.FFmpegError as err:
            streams = ", ".join(_stream_label(s) for s in self._container.streams)
            raise MediaError(f"{self.out}: the {fmt} muxer rejected the streams [{streams}] "
                             f"({_ffmpeg_reason(err)})") from None

    # -- caller side --------------------------------------------------------

    def write(self, frame: Frame) -> None:
        """Queue one RGB frame for encoding; blocks when the encoder is behind."""
        rgb = frame.rgb
        expected = (self._height, self._width, 3)
        # Contract checks on the caller's data, not on user input: a mismatch is a bug
        # upstream (e.g. a resize that was skipped), so it is a ValueError.
        if rgb.shape != expected or rgb.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"{self.out}: frame must be uint8/uint16 of shape {expected}, "
                             f"got {rgb.dtype} {rgb.shape}")
        self._enqueue(frame)

    def copy(self, packet: av.Packet) -> None:
        """Queue one packet from Source.items() for remuxing unchanged."""
        # Resolve the output stream here, while the Source (which owns packet.stream) is
        # certainly open; the worker might otherwise touch a freed input stream.
        index = packet.stream.index if packet.stream else None
        if index in self._plan.skipped:
            return  # named in the notice before frame one
        out_stream = self._copy_map.get(index) if index is not None else None
        if out_stream is None:
            raise ValueError(f"{self.out}: packet does not belong to a copied input stream")
        self._enqueue(_Copy(packet, out_stream))

    def _enqueue(self, item: Frame | _Copy | _End) -> None:
        if self._done:
            raise RuntimeError("Sink is closed")
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> None:
        """Flush the encoder, finish the file and claim ``out`` with it.

        OutputError, with ``out`` left as it is, if a file appeared there meanwhile (another
        render to the same path, a user's file) and ``overwrite`` was not given.
        """
        if self._done:
            return
        try:
            self._enqueue(_END)
            _join(self._thread)
            if self._error is not None:
                raise self._error
            if self._frames_written == 0:
                raise OutputError(f"{self.out}: no video frames were written; "
                                  f"nothing was saved")
            self._container_open = False
            try:
                self._container.close()  # writes the trailer (mp4 index)
            except (av.error.FFmpegError, OSError) as err:
                raise OutputError(f"{self.out}: could not finish the file "
                                  f"({_ffmpeg_reason(err)})") from None
            self._tmp.commit()
            self._done = True
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop the worker and delete the temporary file; ``out`` is left untouched."""
        if self._done:
            return
        self._done = True
        self._abort.set()
        try:
            _join(self._thread)
        finally:
            # _join re-raises a Ctrl-C that arrived while it waited (a second one, when
            # the first is why we abort); the temp file must go all the same.
            self._discard()

    def _discard(self) -> None:
        try:
            if self._container_open:
                self._container_open = False
                try:
                    self._container.close()
                except (av.error.FFmpegError, OSError) as err:
                    # We are already failing and the file is about to be deleted; the
                    # original error is the one worth reporting.
                    _log.debug("%s: ignoring error while closing aborted output: %s",
                               self._tmp, err)
        finally:
            self._tmp.discard()

    # -- worker (encode thread) ---------------------------------------------

    def _run(self) -> None:
        try:
            while not self._abort.is_set():
                try:
                    item = self._queue.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if isinstance(item, _End):
                    self._flush()
                    return
                if isinstance(item, Frame):
                    self._encode(item)
                else:
                    self._mux(item)
        except BaseException as err:  # noqa: BLE001 - re-raised on the caller's thread
            self._error = err

    def _encode(self, frame: Frame) -> None:
        pts = self._output_pts(frame)
        rgb_format = "rgb48le" if frame.rgb.dtype == np.uint16 else "rgb24"
        vframe = av.VideoFrame.from_ndarray(frame.rgb, format=rgb_format)
        color = self._color
        vframe = self._reformatter.reformat(
            vframe,
            format=self.pix_fmt,
            dst_colorspace=color.sws_matrix,
            dst_color_range=color.sws_range,
        )
        # Tag exactly as the codec context says, so the encoder sees one consistent story.
        vframe.colorspace = color.colorspace
        vframe.color_range = color.color_range
        vframe.pts = pts
        vframe.time_base = self._time_base
        try:
            packets = self._video.encode(vframe)
        except av.error.FFmpegError as err:
            raise OutputError(f"{self.out}: encoding failed at pts {pts} "
                              f"({_ffmpeg_reason(err)})") from None
        self._mux_many(packets)
        self._frames_written += 1

    def _output_pts(self, frame: Frame) -> int:
        origin = self._plan.avi_origin
        if frame.pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._pts_step
        elif origin is not None:
            # AVI: the frame's slot on the constant-rate grid, the first frame in slot 0
            # (_check_avi made sure every frame sits on it).
            pts = round((frame.pts * frame.time_base - origin) / self._time_base)
        elif frame.time_base == self._time_base:
            pts = frame.pts
        else:
            pts = round(frame.pts * frame.time_base / self._time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            # Encoders and muxers demand strictly increasing pts; reordering or
            # inventing timestamps would silently change the video's timing.
            raise MediaError(f"{self._source_path}: frame pts {pts} does not follow "
                             f"{self._last_pts}; timestamps must increase")
        self._last_pts = pts
        return pts

    def _mux(self, item: _Copy) -> None:
        packet = item.packet
        # Keep packet.time_base (the input stream's): PyAV rescales to the output
        # stream's time base only if the muxer chose a different one.
        packet.stream = item.stream
        self._mux_many([packet], what=f"stream #{item.stream.index}")

    def _mux_many(self, packets: list[av.Packet], what: str = "video") -> None:
        try:
            for packet in packets:
                self._container.mux_one(packet)
        except av.error.FFmpegError as err:
            raise OutputError(f"{self.out}: writing {what} failed "
                              f"({_ffmpeg_reason(err)})") from None

    def _flush(self) -> None:
        try:
            packets = self._video.encode(None)
        except av.error.FFmpegError as err:
            raise OutputError(f"{self.out}: flushing the encoder failed "
                              f"({_ffmpeg_reason(err)})") from None
        self._mux_many(packets)


def _kept_where(fmt: str, codec: str) -> str:
    """Names the output in the notice of dropped parts: "this Matroska output (libx264)"."""
    name = {"matroska": "Matroska", "webm": "WebM", "avi": "AVI"}.get(fmt, fmt)
    return f"this {name} output ({codec})"


def _supported_codecs(muxer: str) -> set[str]:
    # Nothing is written: PyAV only creates the file when the header is written.
    container = av.open(os.devnull, "w", format=muxer)
    try:
        return container.supported_codecs
    finally:
        container.close()


def open_sink(out: Path, source: Source, options: EncodeOptions, overwrite: bool = False) -> Sink:
    """Prepare ``out`` for writing; nothing appears at ``out`` until the sink closes cleanly."""
    return Sink(out, source, options, overwrite)
