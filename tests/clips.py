"""Tiny deterministic media files for tests, written with PyAV, plus helpers to inspect them.

Every generator writes moving, colourful content (a gradient with a square that moves
one step per frame) so encoders produce real motion and B-frames, and returns the path
it wrote. Sizes and frame counts are small enough that a clip costs a few milliseconds.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.bitstream import BitStreamFilterContext
from av.codec.context import Flags
from av.stream import Disposition
from PIL import Image

from vstpipe.media.encoders import x264_params

# Durations (in ms) cycled through for variable-frame-rate clips: irregular on purpose.
VFR_STEPS_MS = (40, 40, 80, 20, 60, 40, 120, 40, 30, 50)

_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi",
           ".m4a": "mp4", ".webm": "webm"}
_AUDIO_RATE = 48000
FIELD_TT = 2  # AVFieldOrder: top field coded and shown first


def frame_rgb(index: int, size: tuple[int, int], bit_depth: int = 8) -> np.ndarray:
    """The RGB picture of frame ``index``: uint8, or uint16 full-scale when bit_depth > 8."""
    width, height = size
    x = np.linspace(0.0, 1.0, width, dtype=np.float64)[None, :]
    y = np.linspace(0.0, 1.0, height, dtype=np.float64)[:, None]
    img = np.empty((height, width, 3), dtype=np.float64)
    img[..., 0] = x
    img[..., 1] = y
    img[..., 2] = 0.5 + 0.4 * np.sin(2 * np.pi * (x + y + index / 12.0))
    side = max(4, min(width, height) // 4)
    left = (3 * index) % max(1, width - side)
    top = (2 * index) % max(1, height - side)
    img[top:top + side, left:left + side] = (1.0, 0.9, 0.1)
    if bit_depth > 8:
        return np.round(img * 65535).astype(np.uint16)
    return np.round(img * 255).astype(np.uint8)


def frame_pts(frames: int, fps: int, vfr: bool) -> tuple[list[int], Fraction]:
    """The pts list and time base a generated clip's video frames are written with."""
    if not vfr:
        return list(range(frames)), Fraction(1, fps)
    pts, now = [], 0
    for i in range(frames):
        pts.append(now)
        now += VFR_STEPS_MS[i % len(VFR_STEPS_MS)]
    return pts, Fraction(1, 1000)


def make_clip(
    path: Path,
    *,
    size: tuple[int, int] = (64, 48),
    frames: int = 12,
    fps: int = 25,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    audio: str | None = None,
    vfr: bool = False,
    rotation: int = 0,
    bit_depth: int = 8,
    subtitles: bool = False,
    faststart: bool = False,
    colorspace: int | None = None,
    color_range: int | None = None,
    color_primaries: int | None = None,
    color_trc: int | None = None,
    video: bool = True,
    sar: Fraction | None = None,
    video_tags: dict[str, str] | None = None,
    audio_tags: dict[str, str] | None = None,
    audio_disposition: int | None = None,
    container_tags: dict[str, str] | None = None,
    video_options: dict[str, str] | None = None,
    interlaced: bool = False,
    picture: Callable[[int], np.ndarray] | None = None,
) -> Path:
    """Write a small clip; the container follows the suffix of ``path``.

    ``pix_fmt`` None picks yuv420p (yuv420p10le when bit_depth > 8), or the 4:4:4
    variant when a side is odd. ``audio`` is an encoder name ("aac", "ac3") for a
    stereo tone as long as the video. ``rotation`` stores a display matrix
    (counter-clockwise degrees). ``subtitles`` adds a text track (mov_text in
    mp4/mov, subrip in mkv). ``faststart`` puts the mp4/mov index in front, so a
    truncated copy still declares all frames. Colour arguments are raw FFmpeg enums.
    ``video=False`` writes only the audio (and subtitle) streams, e.g. an audio-only .m4a.
    ``sar`` is the sample (pixel) aspect ratio: libx264 stores it in the bitstream and
    mp4/mov also in a 'pasp' box. ``video_tags``/``audio_tags``/``container_tags`` are
    metadata (language, title, ...); ``audio_disposition`` is an av.stream.Disposition.
    ``video_options`` are encoder options (e.g. x265-params). ``interlaced`` codes the
    video as top-field-first fields (encoders that can: libx264, mpeg4, prores).
    ``picture(index)`` gives frame ``index``'s RGB (8-bit) instead of the default pattern.
    """
    path = Path(path)
    if not video and audio is None:
        raise ValueError("a clip without video needs audio")
    width, height = size
    if pix_fmt is None:
        odd = width % 2 == 1 or height % 2 == 1
        pix_fmt = ("yuv444p" if odd else "yuv420p") + ("10le" if bit_depth > 8 else "")
    pts_list, time_base = frame_pts(frames, fps, vfr)
    fmt = _MUXERS[path.suffix.lower()]
    options = {"movflags": "+faststart"} if faststart else {}
    video_options = dict(video_options or {})
    if codec == "libx264":  # as vstpipe's sink does: x264's AVX-512 code is not repeatable
        params = x264_params(video_options.get("x264-params"))
        if params:
            video_options["x264-params"] = params
    with av.open(str(path), "w", format=fmt, options=options) as container:
        stream = container.add_stream(codec, rate=fps, options=video_options) \
            if video else None
        if stream is not None:
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
            for attr, value in (("colorspace", colorspace), ("color_range", color_range),
                                ("color_primaries", color_primaries), ("color_trc", color_trc)):
                if value is not None:
                    setattr(stream.codec_context, attr, value)
            if rotation:
                stream.set_display_rotation(rotation)
            if sar is not None:
                stream.codec_context.sample_aspect_ratio = sar
            if interlaced:
                stream.codec_context.field_order = FIELD_TT
                stream.codec_context.flags |= Flags.interlaced_dct | Flags.interlaced_me
            stream.metadata.update(video_tags or {})
        audio_stream = container.add_stream(audio, rate=_AUDIO_RATE) if audio else None
        if audio_stream is not None:
            audio_stream.metadata.update(audio_tags or {})
            if audio_disposition is not None:
                audio_stream.disposition = audio_disposition
        # Tags are written with the header, i.e. on the first mux below.
        container.metadata.update(container_tags or {})
        text_stream = _add_text_stream(container, fmt) if subtitles else None

        if stream is not None:
            _write_video(container, stream, pts_list, time_base, size, bit_depth,
                         colorspace, color_range, picture)
        seconds = (pts_list[-1] * time_base) + Fraction(1, fps)
        if audio_stream is not None:
            _write_tone(container, audio_stream, float(seconds))
        if text_stream is not None:
            _write_text(container, text_stream, fmt, float(seconds))
    return path


def _write_video(container: av.container.OutputContainer, stream: av.video.VideoStream,
                 pts_list: list[int], time_base: Fraction, size: tuple[int, int],
                 bit_depth: int, colorspace: int | None, color_range: int | None,
                 picture: Callable[[int], np.ndarray] | None = None) -> None:
    rgb_format = "rgb48le" if bit_depth > 8 else "rgb24"
    pix_fmt = stream.codec_context.pix_fmt
    rgb_target = av.VideoFormat(pix_fmt).is_rgb
    for index, pts in enumerate(pts_list):
        rgb = picture(index) if picture is not None else frame_rgb(index, size, bit_depth)
        frame = av.VideoFrame.from_ndarray(rgb, format=rgb_format)
        if rgb_target:  # no matrix or range for RGB targets such as ffv1 bgr0
            frame = frame.reformat(format=pix_fmt)
        else:
            frame = frame.reformat(format=pix_fmt, dst_colorspace=_sws_matrix(colorspace),
                                   dst_color_range=color_range or 1)
        frame.pts = pts
        frame.time_base = time_base
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _sws_matrix(colorspace: int | None) -> int:
    # swscale uses its own constants: 1 = BT.709, 5 = BT.601, 9 = BT.2020.
    return {1: 1, 9: 9, 10: 9}.get(colorspace or 2, 5)


def _add_text_stream(container: av.container.OutputContainer, fmt: str) -> av.stream.Stream:
    codec = "subrip" if fmt == "matroska" else "mov_text"
    stream = container.add_mux_stream(codec)
    stream.time_base = Fraction(1, 1000)
    return stream


def _write_text(container: av.container.OutputContainer, stream: av.stream.Stream, fmt: str,
                seconds: float) -> None:
    for n, start_ms in enumerate(range(0, int(seconds * 1000), 200)):
        text = f"line {n}".encode()
        # mov_text samples carry a 16-bit big-endian length before the UTF-8 text.
        payload = text if fmt == "matroska" else struct.pack(">H", len(text)) + text
        packet = av.Packet(payload)
        packet.stream = stream
        packet.time_base = Fraction(1, 1000)
        packet.pts = packet.dts = start_ms
        packet.duration = 150
        container.mux(packet)


def _write_tone(container: av.container.OutputContainer, stream: av.audio.AudioStream,
                seconds: float) -> None:
    codec = stream.codec_context
    if not codec.is_open:
        codec.open()  # frame_size is only known once the encoder is open
    chunk = codec.frame_size or 1024
    total = int(seconds * _AUDIO_RATE)
    t = np.arange(total + chunk, dtype=np.float32) / _AUDIO_RATE
    tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    fmt = codec.format.name
    for start in range(0, total, chunk):
        samples = np.stack([tone[start:start + chunk]] * 2)
        if fmt == "flt":  # packed: one row of interleaved samples
            samples = samples.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format=fmt,
                                           layout="stereo")
        frame.sample_rate = _AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, _AUDIO_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


# ---------------------------------------------------------------------------
# Named clips used across test files
# ---------------------------------------------------------------------------


def make_avi_mpeg4_ac3(path: Path, *, frames: int = 12) -> Path:
    """AVI with MPEG-4 Part 2 video and AC-3 audio (frame-index pts, 1/25 time base)."""
    return make_clip(Path(path), frames=frames, codec="mpeg4", audio="ac3")


def make_odd_clip(path: Path) -> Path:
    """65x47 clip: 4:2:0 cannot represent it, so it is 4:4:4."""
    return make_clip(Path(path), size=(65, 47))


def make_10bit_clip(path: Path, *, codec: str = "libx264") -> Path:
    """10-bit 4:2:0 clip (libx264 yuv420p10le by default)."""
    return make_clip(Path(path), bit_depth=10, codec=codec)


def make_rotated_clip(path: Path, rotation: int = 90) -> Path:
    """Clip whose container stores a display matrix rotating it by ``rotation`` degrees."""
    return make_clip(Path(path), rotation=rotation)


def make_anamorphic_clip(path: Path, sar: Fraction = Fraction(64, 45)) -> Path:
    """64x48 clip with non-square pixels (PAL 16:9's 64:45 by default): DAR 256:135."""
    return make_clip(Path(path), frames=4, sar=sar)


def make_still(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    """A still image (format from the suffix: .png, .jpg, .webp, ...) written with Pillow."""
    path = Path(path)
    Image.fromarray(frame_rgb(0, size)).save(path)
    return path


def make_audio_only(path: Path) -> Path:
    """An AAC-only .m4a file: valid media, but no video stream."""
    return make_clip(Path(path), audio="aac", video=False)


def make_text_as_mp4(path: Path) -> Path:
    """A plain text file with an .mp4 name."""
    path = Path(path)
    path.write_text("this is not a video\n" * 20)
    return path


def non_video_file(directory: Path) -> list[Path]:
    """Both non-video inputs: an audio-only .m4a and a text file named .mp4."""
    directory = Path(directory)
    return [make_audio_only(directory / "audio_only.m4a"),
            make_text_as_mp4(directory / "text.mp4")]


def corrupt_file(path: Path, size: int = 4096, seed: int = 0) -> Path:
    """Random bytes under an .mp4 name."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
                     .tobytes())
    return path


def truncate_file(src: Path, dst: Path, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of ``src``'s bytes to ``dst``.

    For the reader to notice anything beyond "cannot open", the header must survive:
    use an mp4/mov written with ``faststart=True`` (index first, so it still declares
    every frame and the frame-count check fires) or an AVI/MKV.
    """
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)


# ---------------------------------------------------------------------------
# Fault-suite clips: timelines and streams that are easy to lose
# ---------------------------------------------------------------------------

_VOP = b"\x00\x00\x01\xb6"  # MPEG-4 Part 2 picture (VOP) start code


def _vop_type(data: bytes) -> str:
    """I, P, B or S: the coding type of the first picture in an MPEG-4 Part 2 packet."""
    at = data.find(_VOP)
    return "IPBS"[data[at + 4] >> 6]


def _not_coded_vop(picture: bytes, increment_bits: int) -> bytes:
    """A DivX "N-VOP" placeholder: ``picture``'s header up to its time, vop_coded = 0."""
    at = picture.find(_VOP) + 4
    bits = "".join(f"{b:08b}" for b in picture[at:at + 8])
    pos = 2  # vop_coding_type
    while bits[pos] == "1":  # modulo_time_base: ones ending in a zero
        pos += 1
    pos += 1 + 1 + increment_bits + 1  # that zero, marker, vop_time_increment, marker
    head = bits[:pos] + "0"  # vop_coded = 0
    head += "0" + "1" * ((8 - (len(head) + 1) % 8) % 8)  # stuffing to a byte boundary
    return _VOP + int(head, 2).to_bytes(len(head) // 8, "big")


def make_packed_bframes_avi(path: Path, *, frames: int = 20, b_frames: int = 2,
                            size: tuple[int, int] = (64, 48), fps: int = 25) -> Path:
    """An AVI as DivX 5 / Xvid wrote it: MPEG-4 Part 2 with "packed" B-frames.

    AVI has one timestamp per chunk (its index) and no reordering, so such encoders put
    each P-frame in one chunk with the B-frame shown after it and fill the P's own slot
    with a not-coded placeholder: chunks I0 [P3 B1] B2 N I... for pictures 0, 1, 2, 3.
    The DivX user data ending in "p" tells decoders so. FFmpeg decodes the pictures in
    display order, but their pts come out as 1, 2, 4, 3, 5, 7, 6 ... Frame ``i`` shows
    ``frame_rgb(i)``.
    """
    codec = av.CodecContext.create("mpeg4", "w")
    codec.width, codec.height, codec.pix_fmt = size[0], size[1], "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps)
    codec.max_b_frames = b_frames
    codec.gop_size = 12
    codec.open()
    packets: list[bytes] = []
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(frame_rgb(index, size), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = index
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    types = [_vop_type(p) for p in packets]
    at = packets[0].find(_VOP)
    packets[0] = packets[0][:at] + b"\x00\x00\x01\xb2DivX503b1393p" + packets[0][at:]
    chunks: list[bytes] = []
    i = 0
    while i < len(packets):  # decode order: a reference picture, then the B-frames before it
        reference = packets[i]
        i += 1
        b_run = []
        while i < len(packets) and types[i] == "B":
            b_run.append(packets[i])
            i += 1
        if not b_run:
            chunks.append(reference)
            continue
        chunks.append(reference + b_run[0])
        chunks.extend(b_run[1:])
        chunks.append(_not_coded_vop(reference, (fps - 1).bit_length()))
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = Fraction(1, fps)
        for n, data in enumerate(chunks):
            packet = av.Packet(data)
            packet.stream = stream
            packet.time_base = Fraction(1, fps)
            packet.pts = packet.dts = n
            packet.is_keyframe = types[0] == "I" and n == 0
            container.mux(packet)
    return Path(path)


def make_h264_avi(path: Path, *, frames: int = 20, fps: int = 25) -> Path:
    """H.264 with B-frames in AVI, as ``ffmpeg -i clip.mp4 -c copy clip.avi`` writes it.

    AVI keeps decode order and no presentation times, so the decoded pictures (in display
    order) carry decode-order pts. Frame ``i`` shows ``frame_rgb(i)``.
    """
    path = Path(path)
    mp4 = make_clip(path.with_name(path.stem + ".src.mp4"), frames=frames, fps=fps)
    with av.open(str(mp4)) as source, av.open(str(path), "w", format="avi") as container:
        video = source.streams.video[0]
        stream = container.add_stream_from_template(video)
        stream.time_base = Fraction(1, fps)
        annexb = BitStreamFilterContext("h264_mp4toannexb", video, stream)
        first_dts = None
        for packet in source.demux(video):
            for out in annexb.filter(packet if packet.size else None):
                first_dts = out.dts if first_dts is None else first_dts
                tick = round((out.dts - first_dts) * out.time_base * fps)
                length = round((out.duration or 0) * out.time_base * fps)
                out.stream = stream
                out.time_base = Fraction(1, fps)
                out.pts = out.dts = tick
                out.duration = length
                container.mux(out)
    mp4.unlink()
    return path


def display_order(path: Path, size: tuple[int, int] = (64, 48), candidates: int = 64
                  ) -> list[int]:
    """For each decoded frame of ``path`` in output order, which ``frame_rgb(i)`` it shows."""
    references = np.stack([frame_rgb(i, size).astype(np.int16) for i in range(candidates)])
    order = []
    for rgb in video_frames(path):
        error = np.abs(references - rgb.astype(np.int16)).mean(axis=(1, 2, 3))
        order.append(int(error.argmin()))
    return order


def png_bytes(size: tuple[int, int] = (32, 32), index: int = 3) -> bytes:
    """A small PNG picture, e.g. cover art."""
    buffer = io.BytesIO()
    Image.fromarray(frame_rgb(index, size)).save(buffer, format="PNG")
    return buffer.getvalue()


def with_extras(src: Path, dst: Path, *, chapters: list[dict] | None = None,
                attachments: dict[str, tuple[str, bytes]] | None = None,
                cover: bytes | None = None, second_video: bool = False,
                audio_shift: Fraction = Fraction(0), video_shift: Fraction = Fraction(0)
                ) -> Path:
    """Remux ``src`` into ``dst`` (container from the suffix), adding what is asked.

    ``chapters`` as PyAV's set_chapters takes them; ``attachments`` {file name: (mimetype,
    data)} (Matroska); ``cover`` PNG cover art (an attached picture in mp4, an attachment
    in Matroska); ``second_video`` a 32x24 MPEG-4 video stream of its own;
    ``audio_shift``/``video_shift`` seconds added to every audio/video timestamp.
    """
    dst = Path(dst)
    fmt = _MUXERS[dst.suffix.lower()]
    with av.open(str(src)) as source, av.open(str(dst), "w", format=fmt) as container:
        copies = {s.index: container.add_stream_from_template(s) for s in source.streams}
        for stream in source.streams:
            copies[stream.index].metadata.update(stream.metadata)
        for name, (mimetype, data) in (attachments or {}).items():
            container.add_attachment(name, mimetype, data)
        cover_stream = None
        if cover is not None and fmt == "matroska":
            container.add_attachment("cover.png", "image/png", cover)
        elif cover is not None:
            cover_stream = container.add_stream("png")
            cover_stream.width, cover_stream.height, cover_stream.pix_fmt = 32, 32, "rgb24"
            cover_stream.disposition = Disposition.attached_pic
        extra = None
        if second_video:
            extra = container.add_stream("mpeg4", rate=25)
            extra.width, extra.height, extra.pix_fmt = 32, 24, "yuv420p"
        if chapters:
            container.set_chapters(chapters)
        container.start_encoding()
        if cover_stream is not None:
            packet = av.Packet(cover)
            packet.stream = cover_stream
            packet.time_base = Fraction(1, 90000)
            packet.pts = packet.dts = 0
            container.mux(packet)
        if extra is not None:
            for index in range(4):
                frame = av.VideoFrame.from_ndarray(frame_rgb(index + 30, (32, 24)), "rgb24")
                frame.pts = index
                container.mux(extra.encode(frame))
            container.mux(extra.encode(None))
        for packet in source.demux():
            if packet.dts is None and not packet.size:
                continue
            shift = {"audio": audio_shift, "video": video_shift}.get(packet.stream.type, 0)
            if shift:
                ticks = round(shift / packet.time_base)
                packet.pts += ticks
                if packet.dts is not None:  # Matroska leaves some dts unset
                    packet.dts += ticks
            packet.stream = copies[packet.stream.index]
            container.mux(packet)
    return dst


def chapters(count: int = 3, seconds: Fraction = Fraction(1, 10)) -> list[dict]:
    """``count`` titled chapters of ``seconds`` each, in PyAV's set_chapters form."""
    step = round(seconds * 1000)
    return [{"id": n + 1, "start": n * step, "end": (n + 1) * step,
             "time_base": Fraction(1, 1000), "metadata": {"title": f"Part {n + 1}"}}
            for n in range(count)]


# ---------------------------------------------------------------------------
# Inspection helpers
# ---------------------------------------------------------------------------


def video_pts(path: Path) -> tuple[list[int | None], Fraction]:
    """Decoded video frame pts of ``path``, in decode output order, and their time base."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [f.pts for f in container.decode(stream)], stream.time_base


def video_frames(path: Path) -> list[np.ndarray]:
    """Every decoded video frame as RGB (rgb48le for > 8-bit sources)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        out = []
        for frame in container.decode(stream):
            deep = max(c.bits for c in frame.format.components) > 8
            out.append(frame.to_ndarray(format="rgb48le" if deep else "rgb24"))
        return out


def packet_payloads(path: Path, kind: str = "audio") -> list[bytes]:
    """Payload bytes of every packet of the first ``kind`` stream, in demux order."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        if not streams:
            return []
        return [bytes(p) for p in container.demux(streams[0]) if p.size]


def packet_times(path: Path, kind: str = "audio") -> list[Fraction]:
    """Presentation times (seconds) of every packet of the first ``kind`` stream."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        if not streams:
            return []
        return [p.pts * p.time_base for p in container.demux(streams[0])
                if p.size and p.pts is not None]
