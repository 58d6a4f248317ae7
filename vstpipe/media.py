"""Media I/O: probe, threaded decode to RGB, threaded encode from RGB, and stream copy.

Data flow: ``open_source`` demuxes and decodes on a background thread and yields RGB
:class:`Frame` objects interleaved with the raw packets of every other stream;
``open_sink`` encodes frames on another background thread, remuxes those packets
unchanged, and only renames its temporary file onto the target when everything
succeeded. Both threads spend nearly all their time inside FFmpeg calls that PyAV
runs without the GIL, so they overlap with the caller's torch work.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
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
from av.container import InputContainer, OutputContainer
from av.sidedata.sidedata import Type as SideDataType
from av.stream import Disposition, Stream
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter
from av.video.stream import VideoStream

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


def _pick_streams(container: InputContainer, path: Path) -> tuple[VideoStream, list[Stream]]:
    """The video stream to stylize and the streams to copy unchanged."""
    video: VideoStream | None = None
    copied: list[Stream] = []
    for stream in container.streams:
        if stream.type == "video":
            # Cover art is a one-picture "video" stream; never mistake it for the movie.
            is_cover = bool(stream.disposition & Disposition.attached_pic)
            if video is None and not is_cover:
                video = stream  # type: ignore[assignment]
            else:
                _log.warning("%s: ignoring extra video stream #%d (%s)", path, stream.index,
                             _stream_label(stream))
        elif stream.type in ("audio", "subtitle", "data"):
            copied.append(stream)
        else:
            _log.warning("%s: ignoring %s stream #%d", path, stream.type, stream.index)
    if video is None:
        found = ", ".join(_stream_label(s) for s in container.streams) or "no streams"
        raise MediaError(f"{path}: no video stream (found: {found})")
    return video, copied


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
    video, copied = _pick_streams(container, path)
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
    duration: float | None = None
    if video.duration is not None:
        duration = float(video.duration * time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    frames_declared: int | None = video.frames or None
    if frames_declared is None and duration is not None and rate:
        frames_declared = round(duration * rate)
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
                   backlog, discarded)


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
    """Decoded RGB frames and copy-through packets of one input file; use as a context manager."""

    def __init__(self, path: Path, queue_size: int = 8) -> None:
        if queue_size < 1:
            raise OptionError(f"queue size must be at least 1, got {queue_size}")
        opened = _open_video(Path(path))
        self.info: VideoInfo = opened.info
        self._container = opened.container
        self._video = opened.video
        self._copied = opened.copied
        self._display_matrix = opened.display_matrix
        self._packets = opened.packets
        self._backlog = opened.backlog
        self._discarded = opened.discarded
        # Snapshots, so Sink can read them while the decode thread owns the container.
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
        """The input streams that items() passes through as packets (audio, subtitles, data).

        Valid only while the Source is open; read their settings, do not demux or decode.
        """
        return self._copied

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

    def _frame(self, vframe: av.VideoFrame) -> Frame:
        """Check and convert one decoded frame."""
        path = self.info.path
        width, height = self.info.width, self.info.height
        if (vframe.width, vframe.height) != (width, height):
            # Sink and model are sized once; resizing here would hide the change.
            raise MediaError(f"{path}: frame size changes from {width}x{height} "
                             f"to {vframe.width}x{vframe.height} at video pts "
                             f"{vframe.pts}; mid-stream size changes are not supported")
        if vframe.is_corrupt:
            _log.warning("%s: frame at pts %s is flagged corrupt", path, vframe.pts)
        return Frame(_to_rgb(self._reformatter, vframe, self._deep), vframe.pts,
                     self.info.time_base)

    def _pump(self) -> None:
        path = self.info.path
        video = self._video
        copied = {s.index for s in self._copied}
        decoded = 0
        discarded = self._discarded  # packets the container marks as cut by an edit list
        last_pts: int | None = None
        # First what opening the file already read, then the rest of the same demux.
        backlog, self._backlog = self._backlog, []
        for item in backlog:
            if isinstance(item, av.VideoFrame):
                if not self._put(self._frame(item)):
                    return
                last_pts = item.pts
                decoded += 1
            elif not self._put(item):
                return
        del backlog  # decoded frames are large; do not keep them for the whole file
        packets = self._packets
        while not self._stop.is_set():
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as err:
                raise MediaError(f"{path}: read error after video pts {last_pts} "
                                 f"({_ffmpeg_reason(err)})") from None
            index = packet.stream.index
            if index != video.index:
                if index in copied and _is_payload(packet) and not self._put(packet):
                    return
                continue
            if packet.is_discard:
                discarded += 1
            try:
                frames = video.decode(packet if packet.size else None)
            except av.error.FFmpegError as err:
                raise MediaError(f"{path}: decode error near video pts {packet.pts} "
                                 f"({_ffmpeg_reason(err)})") from None
            for vframe in frames:
                if not self._put(self._frame(vframe)):
                    return
                last_pts = vframe.pts
                decoded += 1
        if self._stop.is_set():
            return
        declared = video.frames
        # Frames cut by an edit list are declared but never output by the decoder.
        if declared and decoded < declared - discarded:
            raise MediaError(f"{path}: truncated: decoded {decoded} of {declared} frames")


def open_source(path: Path, queue_size: int = 8) -> Source:
    """Open ``path`` for decoding; MediaError if it cannot be read as a video."""
    return Source(path, queue_size)


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
    """OutputError if writing ``out`` would clobber the input or an unrequested file."""
    src, out = Path(src), Path(out)
    if out.exists() and src.exists() and os.path.samefile(src, out):
        raise OutputError(f"{out}: is the input file itself; choose another output path")
    if out.resolve() == src.resolve():
        raise OutputError(f"{out}: is the input file itself; choose another output path")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory; give a file name such as {out / 'out.mp4'}")
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: already exists; pass --overwrite to replace it")
    parent = out.parent
    if not parent.is_dir():
        raise OutputError(f"{out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: directory {parent} is not writable")


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


class Sink:
    """Encodes Frames and remuxes packets into a temp file; renamed onto ``out`` on success."""

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
        self._time_base = info.time_base
        self._source_path = info.path
        rate = info.average_rate or Fraction(25)
        # A frame without pts gets the previous one plus one nominal frame duration.
        self._pts_step = max(1, round(1 / (rate * self._time_base)))
        self._last_pts: int | None = None
        self._frames_written = 0
        self._reformatter = VideoReformatter()  # used by the encode thread only

        # Reserve a unique name next to `out` (same filesystem, so os.replace is atomic).
        # os.open honours the umask, unlike mkstemp's 0600 which would leak into `out`.
        while True:
            tmp = self.out.with_name(f".{self.out.name}.{secrets.token_hex(4)}.part")
            try:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            except FileExistsError:
                continue
            except OSError as err:
                raise OutputError(f"{self.out}: cannot create a file in {self.out.parent} "
                                  f"({err.strerror})") from None
            break
        self._tmp = tmp
        self._container_open = False
        # Matroska cannot start a track before 0 unless told to write negative block
        # times (which its format allows); otherwise AAC priming (first audio pts < 0)
        # makes the muxer shift every stream, and video pts would no longer match.
        container_opts = {"avoid_negative_ts": "disabled"} if fmt in ("matroska", "webm") else {}
        try:
            self._container: OutputContainer = av.open(str(tmp), "w", format=fmt,
                                                       options=container_opts)
        except (av.error.FFmpegError, OSError) as err:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"{self.out}: cannot open for writing "
                              f"({_ffmpeg_reason(err)})") from None
        self._container_open = True
        try:
            self._video = self._add_video(codec, options, source, rate)
            self._copy_map = self._add_copies(source, fmt)
            self._container.metadata.update(
                {k: v for k, v in source.metadata.items() if k.lower() not in _MUXER_TAGS})
            self._start(fmt)
        except BaseException:
            self._discard()
            raise

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
        if codec.name == "libx265":
            encoder_opts["x265-params"] = "log-level=error"  # x265 logs to stderr otherwise
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
        # Same time base as the input so every input pts maps 1:1 onto an output pts;
        # this is what lets variable frame rate survive re-encoding.
        ctx.time_base = self._time_base
        stream.time_base = self._time_base
        ctx.thread_type = "AUTO"
        if container.format.name == "avi":
            # AVI stores decode order only, with no presentation timestamps, so reordered
            # (B) frames come back with scrambled pts. mp4/mov/mkv keep pts, so B-frames
            # stay on there.
            ctx.max_b_frames = 0
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
        stream.disposition = source.video_disposition
        return stream

    def _add_copies(self, source: Source, fmt: str) -> dict[int, Stream]:
        mapping: dict[int, Stream] = {}
        for stream in source.copied_streams:
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
        out_stream = self._copy_map.get(packet.stream.index) if packet.stream else None
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
        """Flush the encoder, finish the file and rename it onto ``out``."""
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
            try:
                os.replace(self._tmp, self.out)
            except OSError as err:
                raise OutputError(f"{self.out}: could not move the finished file into "
                                  f"place ({err.strerror})") from None
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
            self._tmp.unlink(missing_ok=True)

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
        if frame.pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._pts_step
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
