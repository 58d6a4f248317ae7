"""Fault suite for media I/O (issue 11): nothing lost, nothing clobbered, nothing cut short.

Each test generates its own input with PyAV (tests/clips.py) and asserts the promise of
one class of input: frames, their order and times, packets and streams kept; or a one-line
error before frame one, with nothing left behind (no output, no temp file); or exactly one
notice, before frame one, naming what the output cannot keep.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import av
import clips
import pytest
from av.stream import Disposition
from typer.testing import CliRunner

import vstpipe
from vstpipe import cli, media
from vstpipe.cli import app
from vstpipe.errors import MediaError, OutputError
from vstpipe.media import EncodeOptions, Frame, open_sink, open_source, probe

LOSSLESS = EncodeOptions(codec="ffv1", pix_fmt="yuv444p")  # frames compare exactly by content

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _pass_through(src: Path, out: Path, options: EncodeOptions = EncodeOptions(),
                  overwrite: bool = False, allow_partial: bool = False) -> list[Frame]:
    """Source -> Sink with frames unchanged; returns the frames written."""
    written = []
    # allow_partial only when asked, so that these tests run against older Sources too.
    source_of = (lambda: open_source(src, allow_partial=True)) if allow_partial else \
        (lambda: open_source(src))
    with source_of() as source, open_sink(out, source.plan, options, overwrite) as sink:
        for item in source.items():
            if isinstance(item, Frame):
                sink.write(item)
                written.append(item)
            else:
                sink.copy(item)
    return written


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def _one_line_naming(err: pytest.ExceptionInfo[BaseException], *names: str) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    for name in names:
        assert name in message, message
    return message


def _notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "vstpipe.media" and r.levelno == logging.WARNING]


def _times(path: Path) -> list[Fraction]:
    pts, time_base = clips.video_pts(path)
    return [p * time_base for p in pts]


def _stream_summary(path: Path) -> list[tuple[str, str | None, bool]]:
    """(type, codec or attachment name, is cover art) of every stream of ``path``."""
    with av.open(str(path)) as container:
        return [(s.type, s.codec_context.name if s.codec_context else s.metadata.get("filename"),
                 bool(s.disposition & Disposition.attached_pic)) for s in container.streams]


def _chapter_marks(path: Path) -> list[tuple[Fraction, Fraction, str]]:
    with av.open(str(path)) as container:
        return [(c["start"] * c["time_base"], c["end"] * c["time_base"],
                 c["metadata"].get("title", "")) for c in container.chapters()]


# ---------------------------------------------------------------------------
# Point 1: the output is claimed atomically at the end
# ---------------------------------------------------------------------------


def test_a_file_appearing_at_out_during_the_render_is_never_replaced(tmp_path):
    src = clips.make_clip(tmp_path / "in.mp4", frames=6, audio="aac")
    out = tmp_path / "out.mp4"
    with (pytest.raises(OutputError) as err, open_source(src) as source,
          open_sink(out, source.plan, EncodeOptions()) as sink):
        for item in source.items():
            sink.write(item) if isinstance(item, Frame) else sink.copy(item)
        out.write_bytes(b"a user's file, written while the render ran")
    _one_line_naming(err, str(out), "appeared")
    assert out.read_bytes() == b"a user's file, written while the render ran"
    assert _leftovers(tmp_path) == []


def test_two_renders_to_one_path_cannot_both_succeed(tmp_path):
    src = clips.make_clip(tmp_path / "in.mp4", frames=4)
    out = tmp_path / "out.mkv"
    with open_source(src) as first_src, open_source(src) as second_src:
        first = open_sink(out, first_src.plan, EncodeOptions())
        second = open_sink(out, second_src.plan, EncodeOptions())
        for frame in first_src.items():
            first.write(frame)
        for frame in second_src.items():
            second.write(frame)
        first.close()
        with pytest.raises(OutputError) as err:
            second.close()
    _one_line_naming(err, str(out), "pass overwrite to replace it")
    assert "pass --overwrite to replace it" in err.value.named(cli.flag)  # as the CLI says it
    assert len(clips.video_frames(out)) == 4  # the first render's file, whole
    assert _leftovers(tmp_path) == []


def test_a_254_character_output_name_works(tmp_path):
    src = clips.make_clip(tmp_path / "in.mp4", frames=3)
    out = tmp_path / ("n" * 250 + ".mkv")
    assert len(out.name) == 254
    _pass_through(src, out)
    assert len(clips.video_frames(out)) == 3
    assert _leftovers(tmp_path) == []


_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from vstpipe.media import EncodeOptions, open_sink, open_source
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    source = open_source(src)
    sink = open_sink(out, source.plan, EncodeOptions())
    for frame in source.items():
        sink.write(frame)
        break
    print("writing", flush=True)
    time.sleep(60)
""")


def test_the_temp_file_of_a_sigkilled_render_is_removed_by_the_next_one(tmp_path):
    src = clips.make_clip(tmp_path / "in.mp4", frames=4)
    out = tmp_path / "out.mp4"
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(Path(vstpipe.__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(src), str(out)],
                             stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "writing\n"
        stale = _leftovers(tmp_path)
        assert len(stale) == 1, stale
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert _leftovers(tmp_path) == stale  # SIGKILL runs no cleanup: the temp file stays
    # Time passes before the next run: a fresh unlocked temp file may be a writer starting.
    old = time.time() - 3600
    os.utime(tmp_path / stale[0], (old, old))
    _pass_through(src, out)
    assert len(clips.video_frames(out)) == 4
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------------------------
# Point 2: every timeline and stream survives, or the user is told before frame one
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [clips.make_packed_bframes_avi, clips.make_h264_avi],
                         ids=["divx-packed-b-frames", "h264-in-avi"])
def test_avi_with_b_frames_renders_in_display_order(tmp_path, make):
    src = make(tmp_path / "in.avi", frames=20)
    in_pts, _ = clips.video_pts(src)
    assert in_pts != sorted(in_pts), "the clip should decode with scrambled pts"
    assert clips.display_order(src) == list(range(20))  # ... but pictures in display order
    out = tmp_path / "out.mkv"
    written = _pass_through(src, out, LOSSLESS)
    assert len(written) == 20
    assert clips.display_order(out) == list(range(20))
    times = _times(out)
    assert len(times) == 20 and all(b - a == Fraction(1, 25) for a, b in zip(times, times[1:]))


def test_avi_drop_frame_chunks_are_not_a_truncation(tmp_path):
    # AVI stores a frame that lasts several ticks as empty "drop" chunks after it; its
    # header counts them as frames, so a frame count alone would call the file cut.
    src = tmp_path / "drops.avi"
    slots = [0, 1, 3, 4, 7, 8]
    with av.open(str(src), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index, slot in enumerate(slots):
            frame = av.VideoFrame.from_ndarray(clips.frame_rgb(index, (64, 48)), "rgb24")
            frame.pts = slot
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert probe(src).frames > len(slots)
    out = tmp_path / "out.mkv"
    assert len(_pass_through(src, out)) == len(slots)
    assert _times(out) == [Fraction(s, 25) for s in slots]


@pytest.mark.parametrize("kind", ["vfr", "rotation", "av-offset"])
def test_avi_output_that_would_lose_timing_is_refused_before_frame_one(tmp_path, kind):
    if kind == "vfr":
        src = clips.make_clip(tmp_path / "in.mp4", frames=10, vfr=True)
    elif kind == "rotation":
        src = clips.make_rotated_clip(tmp_path / "in.mp4", 90)
    else:
        plain = clips.make_clip(tmp_path / "plain.mkv", frames=10, audio="aac")
        src = clips.with_extras(plain, tmp_path / "in.mkv", audio_shift=Fraction(1, 2))
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out.avi"
    with open_source(src) as source, pytest.raises(OutputError) as err:
        open_sink(out, source.plan, EncodeOptions())
    _one_line_naming(err, str(out), ".mkv", ".mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_avi_output_keeps_constant_rate_timing_and_audio(tmp_path):
    src = clips.make_avi_mpeg4_ac3(tmp_path / "in.avi", frames=12)
    mp4 = clips.make_clip(tmp_path / "in.mp4", frames=12)
    out = tmp_path / "out.avi"
    assert len(_pass_through(src, out, EncodeOptions(codec="mpeg4"))) == 12
    assert _times(out) == _times(src)
    audio = clips.packet_payloads(src, "audio")
    assert audio and clips.packet_payloads(out, "audio") == audio
    # An mp4 at 25 fps (time base 1/12800) lands on AVI's 1/25 grid frame for frame.
    assert len(_pass_through(mp4, tmp_path / "mp4.avi", EncodeOptions(codec="mpeg4"))) == 12
    assert _times(tmp_path / "mp4.avi") == [Fraction(i, 25) for i in range(12)]


def test_mkv_chapters_attachments_cover_and_second_video_are_copied(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="vstpipe.media")
    font = b"\x00\x01\x00\x00" + bytes(range(256)) * 4
    plain = clips.make_clip(tmp_path / "plain.mkv", frames=8, audio="aac")
    src = clips.with_extras(plain, tmp_path / "in.mkv", chapters=clips.chapters(3),
                            attachments={"Font.ttf": ("font/ttf", font)},
                            cover=clips.png_bytes(), second_video=True)
    out = tmp_path / "out.mkv"
    _pass_through(src, out)
    assert _notices(caplog) == []
    assert _chapter_marks(out) == _chapter_marks(src) and len(_chapter_marks(out)) == 3
    assert _stream_summary(out) == _stream_summary(src)
    with av.open(str(out)) as container:
        attachment = next(s for s in container.streams if s.type == "attachment")
        assert (attachment.name, attachment.mimetype, attachment.data) == (
            "Font.ttf", "font/ttf", font)
    assert _video_packets(out, 1) == _video_packets(src, 1)  # the second video, unchanged
    assert _video_packets(out, 2) == [clips.png_bytes()]  # the cover art, byte for byte


def _video_packets(path: Path, nth: int) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.video[nth]
        return [bytes(p) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("suffix, kept, dropped", [
    (".mp4", ["chapters", "cover", "video"], ["Font.ttf"]),
    (".mov", ["chapters", "video"], ["Font.ttf", "cover art"]),
    (".avi", ["video"], ["Font.ttf", "cover art", "3 chapters"]),
])
def test_what_a_container_cannot_hold_is_named_once_before_frame_one(tmp_path, caplog, suffix,
                                                                     kept, dropped):
    caplog.set_level(logging.WARNING, logger="vstpipe.media")
    plain = clips.make_clip(tmp_path / "plain.mkv", frames=6, audio="ac3")
    src = clips.with_extras(plain, tmp_path / "in.mkv", chapters=clips.chapters(3),
                            attachments={"Font.ttf": ("font/ttf", b"\x00\x01\x00\x00font")},
                            cover=clips.png_bytes(), second_video=True)
    out = tmp_path / f"out{suffix}"
    with (open_source(src) as source,
          open_sink(out, source.plan, EncodeOptions(codec="mpeg4")) as sink):
        notices = _notices(caplog)  # before frame one
        assert len(notices) == 1 and "\n" not in notices[0], notices
        assert str(out) in notices[0] and all(d in notices[0] for d in dropped), notices
        for item in source.items():
            sink.write(item) if isinstance(item, Frame) else sink.copy(item)
    assert len(_notices(caplog)) == 1
    summary = _stream_summary(out)
    assert ("audio", "ac3", False) in summary
    assert ("chapters" in kept) == bool(_chapter_marks(out))
    assert ("cover" in kept) == any(cover for _, _, cover in summary)
    assert ("video", "mpeg4", False) in summary[1:]  # the second video stream
    assert not any(kind == "attachment" for kind, _, _ in summary)


@pytest.mark.parametrize("suffix", [".mov", ".mp4"])
def test_timecode_is_carried_and_never_a_late_error(tmp_path, suffix):
    src = clips.make_clip(tmp_path / f"in{suffix}", frames=6,
                          video_tags={"timecode": "01:02:03:04"})
    with av.open(str(src)) as container:
        assert any(s.type == "data" for s in container.streams)  # a tmcd track
    for target in (".mov", ".mp4", ".mkv"):
        out = tmp_path / f"out{target}"
        _pass_through(src, out)
        with av.open(str(out)) as container:
            tags = [{k.lower(): v for k, v in s.metadata.items()} for s in container.streams]
        assert any(t.get("timecode") == "01:02:03:04" for t in tags), (target, tags)


def test_timecode_into_avi_is_named_as_dropped(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="vstpipe.media")
    src = clips.make_clip(tmp_path / "in.mov", frames=4, video_tags={"timecode": "10:00:00:00"})
    _pass_through(src, tmp_path / "out.avi", EncodeOptions(codec="mpeg4"))
    notices = _notices(caplog)
    assert len(notices) == 1 and "timecode 10:00:00:00" in notices[0], notices


def test_a_stream_the_muxer_refuses_only_at_the_end_is_refused_before_frame_one(
        tmp_path, monkeypatch):
    # The mov muxer takes a copied tmcd track at the header and fails only when the file
    # is finished. Treated as an ordinary data stream, the rehearsal must catch it.
    monkeypatch.setattr(media.probing, "_is_timecode", lambda stream: False, raising=False)
    src = clips.make_clip(tmp_path / "in.mov", frames=4, video_tags={"timecode": "01:00:00:00"})
    out = tmp_path / "out.mov"
    with open_source(src) as source, pytest.raises(MediaError) as err:
        open_sink(out, source.plan, EncodeOptions())
    _one_line_naming(err, "in.mov", "data", "mov")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mov"]


_MASTERING = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


def _hdr_clip(path: Path) -> Path:
    return clips.make_clip(path, frames=3, codec="libx265", bit_depth=10, colorspace=9,
                           color_primaries=9, color_trc=16, video_options={
                               "x265-params": f"log-level=error:master-display={_MASTERING}"
                                              f":max-cll=1000,400"})


def _side_data(path: Path) -> dict[str, bytes]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return {item.type.name: bytes(item) for item in frame.side_data}


def _first_frame(path: Path) -> tuple[int, bool, int]:
    """(field order, interlaced flag, colour range) as a player reads them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        return stream.codec_context.field_order, frame.interlaced_frame, frame.color_range


@pytest.mark.parametrize("kind", ["hdr", "interlacing", "colour-range", "alpha"])
def test_picture_properties_are_carried_or_named_before_frame_one(tmp_path, caplog, kind):
    caplog.set_level(logging.WARNING, logger="vstpipe.media")
    if kind == "hdr":
        src = _hdr_clip(tmp_path / "in.mp4")
        keeps, loses, needle = (".mkv", EncodeOptions(codec="libx265")), \
            (".mov", EncodeOptions(codec="prores")), "HDR mastering metadata"
    elif kind == "interlacing":
        src = clips.make_clip(tmp_path / "in.mp4", frames=4, interlaced=True)
        keeps, loses, needle = (".avi", EncodeOptions()), \
            (".avi", EncodeOptions(codec="ffv1")), "interlacing (top field first)"
    elif kind == "colour-range":
        src = clips.make_clip(tmp_path / "in.mkv", frames=4, codec="ffv1", pix_fmt="yuv444p",
                              colorspace=1, color_range=2)
        keeps, loses, needle = (".avi", EncodeOptions()), \
            (".avi", EncodeOptions(codec="mpeg4")), "full colour range"
    else:
        src = clips.make_clip(tmp_path / "in.mkv", frames=4, codec="ffv1", pix_fmt="yuva420p")
        keeps, loses, needle = None, (".mkv", EncodeOptions()), "the alpha channel"
    if keeps is not None:
        out = tmp_path / f"kept{keeps[0]}"
        _pass_through(src, out, keeps[1])
        assert _notices(caplog) == []
        if kind == "hdr":
            assert _side_data(out)["MASTERING_DISPLAY_METADATA"] == \
                _side_data(src)["MASTERING_DISPLAY_METADATA"]
            assert _side_data(out)["CONTENT_LIGHT_LEVEL"] == _side_data(src)["CONTENT_LIGHT_LEVEL"]
        elif kind == "interlacing":
            assert _first_frame(out)[:2] == (clips.FIELD_TT, True)
        else:
            assert _first_frame(out)[2] == 2  # full (JPEG) range
    out = tmp_path / f"lost{loses[0]}"
    with (open_source(src) as source, open_sink(out, source.plan, loses[1]) as sink):
        notices = _notices(caplog)  # before frame one
        for item in source.items():
            sink.write(item)
    assert len(notices) == 1 and needle in notices[0] and str(out) in notices[0], notices
    assert len(_notices(caplog)) == 1


# ---------------------------------------------------------------------------
# Point 3: a cut input is never a success unless asked for
# ---------------------------------------------------------------------------


def _cut(tmp_path: Path, suffix: str, frames: int = 30) -> Path:
    # faststart: the mp4 index comes first, so a cut copy still opens and declares them all.
    good = clips.make_clip(tmp_path / f"good{suffix}", frames=frames, audio="aac",
                           faststart=suffix == ".mp4")
    return clips.truncate_file(good, tmp_path / f"cut{suffix}", keep=0.5)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_truncated_input_fails_naming_the_frame_counts_and_writes_nothing(tmp_path, suffix):
    src = _cut(tmp_path, suffix)
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError) as err:
        _pass_through(src, out)
    message = _one_line_naming(err, src.name, "truncated", "allow_partial renders what decodes")
    assert err.value.named(cli.flag).endswith("; --allow-partial renders what decodes")
    counts = re.search(r"decoded (\d+) of (?:about )?(\d+) frames", message)
    assert counts, message
    read, promised = (int(n) for n in counts.groups())
    assert 0 < read < promised == 30, message
    assert not out.exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_allow_partial_renders_what_decodes_with_one_notice(tmp_path, suffix, caplog):
    caplog.set_level(logging.WARNING, logger="vstpipe.media")
    src = _cut(tmp_path, suffix)
    out = tmp_path / "out.mkv"
    written = _pass_through(src, out, allow_partial=True)
    assert 0 < len(written) < 30
    assert len(clips.video_frames(out)) == len(written)
    notices = _notices(caplog)
    assert len(notices) == 1 and f"decoded {len(written)} of" in notices[0], notices
    assert "30" in notices[0] and src.name in notices[0]


def test_an_input_cut_while_it_is_read_fails(tmp_path):
    # Lossless and large enough that the decode thread cannot have read ahead to the end.
    src = clips.make_clip(tmp_path / "in.mkv", frames=40, size=(320, 240), codec="ffv1")
    size = src.stat().st_size
    out = tmp_path / "out.mkv"
    with pytest.raises(MediaError) as err, open_source(src, queue_size=1) as source, \
            open_sink(out, source.plan, EncodeOptions(codec="ffv1")) as sink:
        for n, frame in enumerate(source.items()):
            sink.write(frame)
            if n == 1:
                os.truncate(src, size // 2)
    _one_line_naming(err, src.name, "truncated", "of about 40 frames")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_render_allow_partial_flag(tmp_path, adain_home, style_png):
    src = _cut(tmp_path, ".mkv", frames=8)  # few frames: the model runs on each
    out = tmp_path / "out.mp4"
    args = ["render", str(src), "--out", str(out), "--style", str(style_png), "--offline",
            "--precision", "fp32", "--style-size", "64"]
    runner = CliRunner()
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1, failed.output
    errors = [line for line in failed.output.splitlines() if line.startswith("vstpipe: error")]
    assert len(errors) == 1 and "truncated: decoded" in errors[0], failed.output
    assert not out.exists() and _leftovers(tmp_path) == []
    partial = runner.invoke(app, [*args, "--allow-partial"])
    assert partial.exit_code == 0, partial.output
    assert 0 < len(clips.video_frames(out)) < 8
    assert "--allow-partial" in runner.invoke(app, ["render", "--help"]).output


@pytest.mark.parametrize("shift", ["audio-outlasts-video", "video-starts-late"])
def test_whole_files_are_not_called_truncated(tmp_path, shift):
    # Matroska declares no frame count; its durations are where streams end, which a
    # reader must not take for spans (a late start) nor for the video's (longer audio).
    plain = clips.make_clip(tmp_path / "plain.mkv", frames=10, audio="aac")
    if shift == "audio-outlasts-video":
        src = clips.with_extras(plain, tmp_path / "in.mkv", audio_shift=Fraction(1, 5))
    else:
        src = clips.with_extras(plain, tmp_path / "in.mkv", video_shift=Fraction(1, 2),
                                audio_shift=Fraction(1, 2))
    assert probe(src).frames == 10
    assert len(_pass_through(src, tmp_path / "out.mkv")) == 10
    with pytest.raises(MediaError, match=r"truncated: decoded \d+ of about \d+ frames"):
        _pass_through(clips.truncate_file(src, tmp_path / "cut.mkv", 0.3), tmp_path / "x.mkv")
