"""Encoding: the encode options and their checks, the output rules, and the Sink.

:class:`Sink` encodes Frames on a worker thread, remuxes the packets a Source copies
unchanged, and claims the target with its temporary file only when everything succeeded
(atomic.TempOutput: never over a file that appeared there meanwhile). The thread spends
nearly all its time inside FFmpeg calls that PyAV runs without the GIL, so it overlaps
with the caller's torch work. What the output keeps besides the video is carry.py's.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import av
import av.error
import numpy as np
from av.codec.context import Flags
from av.container import OutputContainer
from av.stream import Stream
from av.video.reformatter import ColorRange, VideoReformatter
from av.video.stream import VideoStream

from vstpipe import atomic
from vstpipe.errors import MediaError, OptionError, OutputError

from .carry import MUXER_TAGS, VIDEO_TAGS, plan_output, stream_tags
from .color import bit_depth_of, output_color
from .encoders import (
    EncodeOptions,
    check_encode_options,
    codec_name,
    encoder_settings,
    explain_refusal,
    find,
    fits_size,
    pick_pix_fmt,
    profile_of,
    size_hint,
    x264_params,
)
from .frames import Frame
from .probing import ffmpeg_reason, stream_label
from .sequences import IMAGE_CODECS, is_sequence, name_of
from .sequences import find as find_sequence
from .streams import StreamPlan
from .workers import END, Consumer

# One logger for the whole package, named as before the split: notices are filtered by it.
_log = logging.getLogger("vstpipe.media")


@dataclass(frozen=True)
class _Copy:
    """A packet to remux and the output stream it belongs to."""

    packet: av.Packet
    stream: Stream


# Muxer per output suffix, set explicitly because the temp file ends in ".part".
_MUXERS: Final = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    # A still, or an image sequence when the name holds a counter (%05d): FFmpeg's image2.
    **dict.fromkeys(IMAGE_CODECS, "image2"),
}


def check_output_path(src: Path, out: Path, overwrite: bool) -> None:
    """OutputError if writing ``out`` would clobber the input or an unrequested file.

    The early, friendly check; the Sink claims ``out`` atomically at the end as well
    (atomic.TempOutput.commit), so a file that appears there meanwhile is never replaced.
    """
    src, out = Path(src), Path(out)
    if is_sequence(out):
        if out.resolve() == src.resolve():
            raise OutputError(f"{out}: is the input sequence itself; choose another output "
                              f"pattern")
        check_sequence_target(out, overwrite)
        return
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


class Sink:
    """Encodes Frames and remuxes packets into a locked temp file beside ``out``; claims ``out``
    at the end (atomic.TempOutput), so nothing appears there unless everything succeeded.

    Everything the output cannot keep is decided before frame one: a refusal (a stream the
    muxer rejects, AVI losing frame times, sync or rotation) raises; anything dropped with
    the output still sound (cover art, attachments, chapters, timecode, HDR metadata,
    interlacing, colour range, alpha in a container or encoder without room for it) is
    named in one warning.
    """

    def __init__(self, out: Path, streams: StreamPlan, options: EncodeOptions, overwrite: bool
                 ) -> None:
        self.out = Path(out)
        check_encode_options(options, self.out)
        self._sequence = is_sequence(self.out)
        check_output_path(streams.info.path, self.out, overwrite)
        fmt = _muxer_for(self.out)
        info = streams.info
        codec = find(codec_name(options, self.out))
        width, height = options.size or (info.width, info.height)
        pix_fmt = options.pix_fmt or pick_pix_fmt(codec, info.bit_depth, width, height,
                                                  profile_of(options, codec))
        if not fits_size(pix_fmt, width, height):
            raise OptionError.about("{out}: pixel format {pix_fmt_name} needs an even width "
                                    "and height, got {w}x{h}; " + size_hint(codec, width, height),
                                    out=self.out, pix_fmt_name=pix_fmt, w=width, h=height)
        self._width, self._height = width, height
        self._color = output_color(info, pix_fmt)
        self.pix_fmt: str = pix_fmt  # what the encoder receives
        # Callers hand uint16 frames when this is > 8, so the extra precision reaches the file.
        self.bit_depth: int = bit_depth_of(pix_fmt)
        self._source_path = info.path
        self._options = options
        rate = info.average_rate or Fraction(25)
        self._rate = rate
        # Matroska cannot start a track before 0 unless told to write negative block
        # times (which its format allows); otherwise AAC priming (first audio pts < 0)
        # makes the muxer shift every stream, and video pts would no longer match.
        # AVI has no start times at all: every stream plays from its first packet, so a
        # shift would only move the video (whole frames at a time) against the audio.
        container_opts = {"avoid_negative_ts": "disabled"} \
            if fmt in ("matroska", "webm", "avi") else {}
        if fmt == "image2":  # one file, rewritten; or numbered files, as the input's if it has
            container_opts = {"start_number": str(_first_number(streams))} if self._sequence \
                else {"update": "1"}
        full_range = self._color.color_range == ColorRange.JPEG and self._color.colorspace != 0
        plan = plan_output(streams, fmt, codec.name, self.out, full_range, container_opts)
        self._plan = plan
        # Same time base as the input so every input pts maps 1:1 onto an output pts, which
        # keeps variable frame rates; AVI counts frames at its constant rate instead.
        self._time_base = info.time_base if plan.avi_origin is None else 1 / rate
        # A frame without pts gets the previous one plus one nominal frame duration.
        self._pts_step = max(1, round(1 / (rate * self._time_base)))
        self._last_pts: int | None = None
        self._cut = streams.window.cut if streams.window else Fraction(0)  # output time 0
        self._frames_written = 0
        self._reformatter = VideoReformatter()  # used by the encode thread only

        # Locked, uniquely named, within the name limit; sweeps a killed run's leftovers.
        self._tmp: atomic.TempOutput | atomic.TempSequence = \
            atomic.TempSequence(self.out, overwrite=overwrite) if self._sequence \
            else atomic.TempOutput(self.out, overwrite=overwrite)
        self._container_open = False
        try:
            self._container: OutputContainer = av.open(str(self._tmp.path), "w", format=fmt,
                                                       options=container_opts)
        except (av.error.FFmpegError, OSError) as err:
            self._tmp.discard()
            raise OutputError(f"{self.out}: cannot open for writing "
                              f"({ffmpeg_reason(err)})") from None
        self._container_open = True
        try:
            self._video = self._add_video(codec, options, streams, rate)
            self._copy_map = self._add_copies(streams, fmt)
            for name, mimetype, data in plan.covers:
                self._container.add_attachment(name, mimetype, data)
            if plan.chapters:
                self._container.set_chapters(list(plan.chapters))
            self._container.metadata.update(
                {k: v for k, v in streams.metadata.items() if k.lower() not in MUXER_TAGS})
            self._start(fmt)
        except BaseException:
            self._discard()
            raise
        if plan.dropped:
            # One line, before frame one, naming all of it.
            _log.warning("%s: not kept in %s: %s", self.out,
                         _kept_where(fmt, codec.name), "; ".join(plan.dropped))

        self._worker = Consumer(self._run, name="vstpipe-encode", queue_size=8)
        self._worker.start()
        self._done = False

    # -- setup --------------------------------------------------------------

    def _add_video(self, codec: av.Codec, options: EncodeOptions, streams: StreamPlan,
                   rate: Fraction) -> VideoStream:
        container = self._container
        encoder_opts, bitrate = encoder_settings(options, codec)
        plan = self._plan
        if codec.name == "libx265":
            # x265 logs to stderr otherwise; the HDR parameters join any the user gave.
            encoder_opts["x265-params"] = ":".join(
                p for p in ("log-level=error", plan.encoder_params,
                            encoder_opts.get("x265-params")) if p)
        elif codec.name == "libx264" or plan.encoder_params:
            params = x264_params(plan.encoder_params, encoder_opts.get("x264-params"))
            if params:
                encoder_opts["x264-params"] = params
        try:
            stream = container.add_stream(codec.name, rate=rate, options=encoder_opts)
        except ValueError:
            fits = [ext for ext, muxer in _MUXERS.items()
                    if codec.name in _supported_codecs(muxer)]
            raise OptionError(f"{self.out}: a {container.format.name} file cannot hold "
                              f"{codec.name} video; use one of {', '.join(fits) or '?'}"
                              ) from None
        ctx = stream.codec_context
        if bitrate is not None:
            ctx.bit_rate = bitrate
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
        if streams.display_matrix is not None:
            # The raw matrix (not just the angle) so flips survive too.
            stream.set_display_matrix(streams.display_matrix)
        info = streams.info
        sar = _output_sar(info.sample_aspect_ratio, (info.width, info.height),
                          (self._width, self._height))
        if sar is not None:
            ctx.sample_aspect_ratio = sar
            if (sar != 1 and container.format.name in ("matroska", "webm")
                    and codec.name not in _SAR_IN_BITSTREAM):
                _log.warning("%s: %s cannot store the %s pixel aspect ratio in a %s file; "
                             "it will play with square pixels (use .mp4/.mov or libx264)",
                             self.out, codec.name, sar, container.format.name)
        tags = stream_tags(streams.video_metadata)
        stream.metadata.update({k: tags[k] for k in VIDEO_TAGS if k in tags})
        if plan.timecode:
            # mov/mp4 turn this tag into a tmcd track; Matroska keeps it as TIMECODE.
            stream.metadata["timecode"] = plan.timecode
        stream.disposition = streams.video_disposition
        return stream

    def _add_copies(self, streams: StreamPlan, fmt: str) -> dict[int, Stream]:
        mapping: dict[int, Stream] = {}
        for stream in self._plan.copies:
            try:
                out = self._container.add_stream_from_template(stream)
            except ValueError:
                raise MediaError(f"{streams.info.path}: stream #{stream.index} "
                                 f"({stream_label(stream)}) cannot be copied into a "
                                 f"{fmt} file ({self.out.name}); choose another container"
                                 ) from None
            # The template carries codec parameters only; language, title and flags
            # such as default/forced/commentary are what players pick tracks by.
            out.metadata.update(stream_tags(stream.metadata))
            out.disposition = stream.disposition
            mapping[stream.index] = out
        return mapping

    def _start(self, fmt: str) -> None:
        # Open the encoder and write the header now, so bad settings or streams the
        # muxer rejects fail before any decoding work is spent.
        ctx = self._video.codec_context
        try:
            ctx.open()
        except av.error.FFmpegError as err:
            rate = self._rate
            why = explain_refusal(self._options, find(codec_name(self._options, self.out)),
                                  self._width,
                                  self._height, self.pix_fmt, rate)
            if why is not None:
                raise OptionError.about("{out}: " + why, out=self.out) from None
            raise OptionError(
                f"{self.out}: encoder {ctx.name} rejected "
                f"{self._width}x{self._height} {self.pix_fmt} at time base "
                f"{self._time_base} with {_shown_settings(self._options)} "
                f"({ffmpeg_reason(err)})") from None
        try:
            self._container.start_encoding()
        except av.error.FFmpegError as err:
            streams = ", ".join(stream_label(s) for s in self._container.streams)
            raise MediaError(f"{self.out}: the {fmt} muxer rejected the streams [{streams}] "
                             f"({ffmpeg_reason(err)})") from None

    # -- caller side --------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once closed or aborted (the driver's FrameSink protocol; a file never closes
        early under its writer, unlike a pipe whose reader went away)."""
        return self._done

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

    def _enqueue(self, item: object) -> None:
        if self._done:
            raise RuntimeError("Sink is closed")
        self._worker.send(item)  # raises what stopped the encode thread

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
            self._enqueue(END)
            self._worker.join()
            if self._worker.error is not None:
                raise self._worker.error
            if self._frames_written == 0:
                raise OutputError(f"{self.out}: no video frames were written; "
                                  f"nothing was saved")
            # Where the header could not say how many frames come (check_frame_count before
            # frame one), the count written decides.
            check_frame_count(self.out, self._frames_written)
            self._container_open = False
            try:
                self._container.close()  # writes the trailer (mp4 index)
            except (av.error.FFmpegError, OSError) as err:
                raise OutputError(f"{self.out}: could not finish the file "
                                  f"({ffmpeg_reason(err)})") from None
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
        self._worker.stop.set()
        try:
            self._worker.join()
        finally:
            # join re-raises a Ctrl-C that arrived while it waited (a second one, when
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
        for item in self._worker.requests():
            if isinstance(item, Frame):
                self._encode(item)
            else:
                self._mux(item)
        if not self._worker.stop.is_set():  # END from close(), not abort(): finish the file
            self._flush()

    def _encode(self, frame: Frame) -> None:
        pts = self._output_pts(frame)
        color = self._color
        if self.pix_fmt == "gbrpf32le":  # float (EXR): exact here, swscale rounds to 15 bits
            top = 65535.0 if frame.rgb.dtype == np.uint16 else 255.0
            vframe = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(frame.rgb.astype(np.float32) / top), format="gbrpf32le")
        else:
            rgb_format = "rgb48le" if frame.rgb.dtype == np.uint16 else "rgb24"
            vframe = self._reformatter.reformat(
                av.VideoFrame.from_ndarray(frame.rgb, format=rgb_format),
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
                              f"({ffmpeg_reason(err)})") from None
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
        elif frame.time_base == self._time_base and not self._cut:
            pts = frame.pts
        else:  # a trim starts the output's clock at its cut
            pts = round((frame.pts * frame.time_base - self._cut) / self._time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            # Encoders and muxers demand strictly increasing pts; reordering or
            # inventing timestamps would silently change the video's timing.
            raise MediaError(f"{self._source_path}: frame pts {pts} does not follow "
                             f"{self._last_pts}; timestamps must increase")
        self._last_pts = pts
        return pts

    def _mux(self, item: _Copy) -> None:
        packet = item.packet
        if self._cut and packet.pts is not None and packet.time_base is not None:
            _move(packet, self._cut)
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
                              f"({ffmpeg_reason(err)})") from None

    def _flush(self) -> None:
        try:
            packets = self._video.encode(None)
        except av.error.FFmpegError as err:
            raise OutputError(f"{self.out}: flushing the encoder failed "
                              f"({ffmpeg_reason(err)})") from None
        self._mux_many(packets)


def _first_number(streams: StreamPlan) -> int:
    """An image sequence output's first number: the input frame's own when the input is a
    sequence too (frame numbers line up, a trim's included), else 1 as FFmpeg counts."""
    info = streams.info
    if info.start_number is None:
        return 1
    window = streams.window
    rate = info.average_rate
    return info.start_number + (window.frames_before(rate) if window and rate else 0)


def check_frame_count(out: Path, frames: int | None) -> None:
    """OutputError before frame one when a single image (not a sequence) would be given more
    than one frame (``frames`` as far as the input says)."""
    if frames is not None and frames > 1 and _MUXERS.get(out.suffix.lower()) == "image2" \
            and not is_sequence(out):
        raise OutputError(f"{out}: one image takes one frame, the input has {frames}; write "
                          f"a sequence such as "
                          f"{out.with_name(out.stem + '_%05d' + out.suffix).name}, or pick one "
                          f"frame with --start and --duration")


def check_sequence_target(out: Path, overwrite: bool) -> None:
    """OutputError if an image sequence cannot be written as ``out`` names it: its folder is
    missing or unwritable, or (without ``overwrite``) files of that name exist there."""
    atomic.check_folder(out)
    if not overwrite:
        try:
            existing = find_sequence(out)
        except MediaError:
            return
        raise OutputError.about("{out}: {count} files of this sequence already exist (from "
                                "{first}); pass {overwrite} to replace them", out=out,
                                count=existing.count, first=name_of(out, existing.first).name)


def _shown_settings(options: EncodeOptions) -> str:
    """The encoder settings a user gave, for a refusal's message."""
    given = [f"{name}={value}" for name, value in (
        ("preset", options.encoder_preset), ("tune", options.tune),
        ("profile", options.profile), ("bitrate", options.bitrate), ("crf", options.crf))
        if value is not None]
    given += [f"{k}={v}" for k, v in options.encoder_opts]
    return ", ".join(given) or "its defaults"


def _move(packet: av.Packet, cut: Fraction) -> None:
    """A copied packet's times on a trimmed output's clock (``cut`` seconds earlier), in
    whole ticks of its own time base. A subtitle shown across the cut starts at 0, shortened
    by what went before it; the Source passed no other packet from before the cut."""
    ticks = round(cut / packet.time_base)
    pts = packet.pts - ticks
    if pts < 0 and packet.duration:
        packet.duration = max(1, packet.duration + pts)
    if packet.dts is not None:
        packet.dts = max(packet.dts - ticks, 0) if pts < 0 else packet.dts - ticks
    packet.pts = max(pts, 0)


def _kept_where(fmt: str, codec: str) -> str:
    """Names the output in the notice of dropped parts: "this Matroska output (libx264)"."""
    name = {"matroska": "Matroska", "webm": "WebM", "avi": "AVI", "image2": "image"}.get(fmt, fmt)
    return f"this {name} output ({codec})"


def _supported_codecs(muxer: str) -> set[str]:
    # Nothing is written: PyAV only creates the file when the header is written.
    container = av.open(os.devnull, "w", format=muxer)
    try:
        return container.supported_codecs
    finally:
        container.close()


def open_sink(out: Path, streams: StreamPlan, options: EncodeOptions, overwrite: bool = False
              ) -> Sink:
    """Prepare ``out`` for writing; nothing appears at ``out`` until the sink closes cleanly."""
    return Sink(out, streams, options, overwrite)
