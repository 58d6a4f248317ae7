"""What an output keeps besides the stylized video, decided before frame one.

Copied streams (audio, subtitles, data), cover art, attachments, chapters, timecode, HDR
mastering metadata, interlacing, colour range and tags, per container and encoder:
:func:`plan_output` rehearses each copied stream with the muxer in memory, refuses what
must not be written at all (a stream the muxer rejects; AVI losing frame times, sync or
rotation) and lists what the output drops, for the Sink's one notice.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import av.error
import numpy as np
from av.stream import Disposition, Stream

from vstpipe.errors import MediaError, OutputError
from vstpipe.timecode import advance

from .frames import VideoInfo
from .probing import FIELD_NAMES, Demuxer, ffmpeg_reason, is_payload, open_container, stream_label
from .streams import StreamPlan

# Of the re-encoded video stream, only these tags still describe it; handler_name,
# vendor_id and encoder name the old file's writer.
VIDEO_TAGS: Final = ("language", "title")
# Container tags the muxer writes for itself (compared lower-case: Matroska's are upper).
MUXER_TAGS: Final = frozenset({"encoder", "major_brand", "minor_version", "compatible_brands"})


def stream_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """A copied stream's tags as the output's muxer should be given them."""
    out = dict(tags)
    # The mov/mp4 demuxer reports a track title (udta 'name') as "name", but every
    # muxer reads "title"; renamed, a title survives mp4 -> mp4 and mp4 -> mkv.
    if "name" in out and "title" not in out:
        out["title"] = out.pop("name")
    return out


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
class Plan:
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
        out.metadata.update(stream_tags(stream.metadata))
        out.disposition = stream.disposition
        container.start_encoding()
        if packet is not None:
            packet.stream = out
            container.mux_one(packet)
    except (ValueError, av.error.FFmpegError) as err:
        reason = ffmpeg_reason(err)
    try:
        container.close()  # the trailer
    except (av.error.FFmpegError, OSError) as err:
        reason = reason or ffmpeg_reason(err)
    return reason


def _first_packets(path: Path, streams: tuple[Stream, ...]) -> dict[int, av.Packet]:
    """The first payload packet of each stream (by index) in a fresh read of ``path``."""
    wanted = {s.index for s in streams if s.type != "attachment"}
    found: dict[int, av.Packet] = {}
    if not wanted:
        return found
    with open_container(path) as container:
        demux = container.demux([container.streams[i] for i in sorted(wanted)])
        try:
            for n, packet in enumerate(demux):
                index = packet.stream.index
                if index in wanted and index not in found and is_payload(packet):
                    found[index] = packet
                if len(found) == len(wanted) or n >= _REHEARSAL_PACKETS:
                    break
        except av.error.FFmpegError:
            # A damaged file: the Source reports that with frame counts; rehearse what we have.
            return found
    return found


def _video_times(info: VideoInfo, index: int) -> list[Fraction]:
    """Presentation times (s) of every video packet, read without decoding (for AVI).

    One more pass over the file, but demuxing only: only AVI output needs it.
    """
    demuxer = Demuxer(info.demuxer, info.demuxer_options, info.start_number)
    with open_container(info.path, demuxer) as container:
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


def _check_avi(streams: StreamPlan, out: Path) -> Fraction:
    """OutputError unless AVI can keep this video's timing; returns its first frame's time.

    AVI stores one frame per tick of a constant rate and no start offset per stream, and
    FFmpeg writes no display matrix into it. Rather than lose rotation, variable frame
    timing or A/V sync with exit 0, refuse before frame one and name what keeps them.
    """
    info = streams.info
    matrix = streams.display_matrix
    if matrix is not None and tuple(matrix) != _IDENTITY_MATRIX:
        raise OutputError(f"{out}: an AVI file cannot store the input's display rotation "
                          f"({info.rotation} degrees) or flip; use {_KEEPING_CONTAINERS}")
    rate = info.average_rate
    times = _video_times(info, streams.video_index)
    window = streams.window
    if window is not None:  # a trimmed render: only its frames go in, audio cut with them
        half = info.time_base / 2
        times = [t for t in times if t + half > window.cut
                 and (window.stop is None or t + half <= window.stop)]
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
    for stream in streams.copied_streams:
        if stream.type != "audio" or stream.start_time is None or window is not None:
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


def _trimmed_chapters(streams: StreamPlan) -> tuple[dict[str, object], ...]:
    """The chapters on the output's clock: a trim drops those outside it and cuts the rest."""
    chapters = tuple(dict(c) for c in streams.chapters)
    window = streams.window
    if window is None:
        return chapters
    kept = []
    for chapter in chapters:
        base = Fraction(chapter["time_base"])
        start, end = chapter["start"] * base, chapter["end"] * base
        if end <= window.cut or (window.stop is not None and start >= window.stop):
            continue
        if window.stop is not None:
            end = min(end, window.stop)
        chapter.update(start=round((max(start, window.cut) - window.cut) / base),
                       end=round((end - window.cut) / base))
        kept.append(chapter)
    return tuple(kept)


def plan_output(streams: StreamPlan, fmt: str, codec: str, out: Path, full_range: bool,
                options: dict[str, str]) -> Plan:
    """Decide, before frame one, what the ``fmt`` output keeps; OutputError/MediaError if
    it must not be written at all (AVI losing timing; a stream the muxer refuses)."""
    avi_origin = _check_avi(streams, out) if fmt == "avi" else None
    dropped: list[str] = []
    copies: list[Stream] = []
    covers: list[tuple[str, str, bytes]] = []
    skipped: set[int] = set()
    first = _first_packets(streams.info.path, streams.copied_streams)
    for stream in streams.copied_streams:
        packet = first.get(stream.index)
        name = f"#{stream.index} ({stream_label(stream)})"
        if fmt == "image2":  # image files hold pictures only
            dropped.append(f"{stream.type} stream {name}")
            skipped.add(stream.index)
            continue
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
                raise MediaError(f"{streams.info.path}: stream {name} cannot be copied into "
                                 f"a {fmt} file ({out.name}: {reason}); choose another "
                                 f"container")
            copies.append(stream)
            continue
        if keeps and _muxer_refusal(fmt, stream, packet, options) is None:
            copies.append(stream)
        else:
            dropped.append(kind)
            skipped.add(stream.index)
    chapters = _trimmed_chapters(streams)
    if chapters and fmt not in _KEEPS_CHAPTERS:
        dropped.append(f"{len(chapters)} chapters")
        chapters = ()
    timecode = streams.timecode
    window = streams.window
    if timecode and window is not None and streams.info.average_rate:
        # The label of the first output frame: the source's, moved on by the trimmed frames.
        rate = streams.info.average_rate
        moved = advance(timecode, window.frames_before(rate), rate)
        if moved is None:
            dropped.append(f"timecode {timecode} (not a timecode that can be counted on by "
                           f"frames at {float(rate):g} fps)")
        timecode = moved
    if timecode and fmt not in _KEEPS_TIMECODE:
        dropped.append(f"timecode {timecode}")
        timecode = None
    params = None
    if streams.mastering_display or streams.content_light:
        if codec in _HDR_ENCODERS:
            params = _hdr_params(codec, streams.mastering_display, streams.content_light)
        else:
            dropped.append(f"HDR mastering metadata ({codec} cannot write it; "
                           f"{' or '.join(_HDR_ENCODERS)} can)")
    order = streams.field_order if streams.field_order in FIELD_NAMES else 0
    coded = bool(order) and codec in _INTERLACED_ENCODERS
    if order and not coded and fmt not in _KEEPS_FIELD_ORDER:
        dropped.append(f"interlacing ({FIELD_NAMES[order]})")
        order = 0
    if full_range and fmt == "avi" and codec not in _RANGE_IN_BITSTREAM:
        dropped.append(f"full colour range ({codec} in AVI cannot state it)")
    if streams.has_alpha:
        dropped.append(f"the alpha channel ({streams.info.pix_fmt}: stylized frames are opaque)")
    return Plan(tuple(copies), tuple(covers), frozenset(skipped), chapters, timecode,
                params, order, coded, tuple(dropped), avi_origin)
