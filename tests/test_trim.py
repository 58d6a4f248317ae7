"""Trimmed renders (`--start`, `--duration`, `--end`): which frames, what clock, what audio,
subtitles, chapters and timecode come along, and the errors (library level on a random
network; the flags once through the CLI)."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from clips import chapters, make_clip, video_frames, with_extras
from typer.testing import CliRunner

from vstpipe import jobs, pipeline
from vstpipe.cli import app
from vstpipe.errors import OptionError
from vstpipe.keyframes import Timeline
from vstpipe.media import EncodeOptions, Frame, Trim, open_source
from vstpipe.sessions import Sessions
from vstpipe.spec import Compute, Job, Look

runner = CliRunner()
FPS = 25


WHOLE = Trim()


def _job(style: Path, trim: Trim = WHOLE, timeline: Timeline | None = None) -> Job:
    # FFV1: lossless, so a frame decodes to the same pixels whatever frames surround it.
    return Job(Look(timeline or Timeline.constant([style]), style_size=64),
               Compute(precision="fp32", batch=3), trim=trim,
               encode=EncodeOptions(codec="ffv1"))


def _render(src: Path, out: Path, job: Job, net) -> pipeline.RenderReport:
    return pipeline.render(src, out, job, Sessions(nets={job.model: net}))


def _times(path: Path, kind: str) -> list[tuple[Fraction, Fraction]]:
    """(start, duration) in seconds of every payload packet of the first ``kind`` stream."""
    with av.open(str(path)) as c:
        stream = next(s for s in c.streams if s.type == kind)
        return sorted((p.pts * p.time_base, (p.duration or 0) * p.time_base)
                      for p in c.demux(stream) if p.size)


def _frame_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def _packets_in(path: Path, kind: str, start: Fraction, end: Fraction) -> list[bytes]:
    with av.open(str(path)) as c:
        stream = next(s for s in c.streams if s.type == kind)
        return [bytes(p) for p in c.demux(stream)
                if p.size and start <= p.pts * p.time_base < end]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s at 25 fps with AAC audio and a subtitle line every 0.2 s, in Matroska."""
    return make_clip(tmp_path_factory.mktemp("trim") / "in.mkv", frames=50, fps=FPS,
                     audio="aac", subtitles=True)


@pytest.fixture(scope="module")
def whole(clip, tmp_path_factory, net, style_png_module) -> Path:
    out = tmp_path_factory.mktemp("whole") / "whole.mkv"
    _render(clip, out, _job(style_png_module), net)
    return out


@pytest.fixture(scope="module")
def style_png_module(tmp_path_factory) -> Path:
    from PIL import Image
    path = tmp_path_factory.mktemp("style") / "style.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_a_trim_renders_its_frames_from_time_zero_with_the_same_pixels(
        clip, whole, tmp_path, net, style_png_module):
    out = tmp_path / "cut.mkv"
    report = _render(clip, out, _job(style_png_module, Trim(Fraction(1), Fraction(9, 5))), net)
    assert report.frames == 20  # frames 25..44: 1.0 s up to, not including, 1.8 s
    assert _frame_times(out) == [Fraction(n, FPS) for n in range(20)]
    # Per-frame stylization: the trimmed frames are the whole render's frames 25..44.
    cut, full = video_frames(out), video_frames(whole)
    assert len(cut) == 20
    for n, frame in enumerate(cut):
        np.testing.assert_array_equal(frame, full[25 + n], err_msg=f"output frame {n}")


def test_audio_and_subtitles_are_cut_at_packet_boundaries_on_the_new_clock(
        clip, tmp_path, net, style_png_module):
    out = tmp_path / "cut.mkv"
    start, end = Fraction(1), Fraction(9, 5)
    _render(clip, out, _job(style_png_module, Trim(start, end)), net)
    # Every audio packet that starts in the range, byte for byte, and no other.
    kept = _packets_in(clip, "audio", start, end)
    assert kept and _packets_in(out, "audio", Fraction(-10), Fraction(10)) == kept
    audio = _times(out, "audio")
    first_in = min(t for t, _ in _times(clip, "audio") if t >= start)
    assert audio[0][0] == pytest.approx(float(first_in - start), abs=1e-3)
    assert 0 <= audio[0][0] < Fraction(1024, 44100) + Fraction(1, 1000)
    assert audio[-1][0] < end - start
    # Lines at 1.0, 1.2, 1.4, 1.6 s (0.15 s each) start in it; the line at 0.8 s ended before.
    subs = _times(out, "subtitle")
    assert [t for t, _ in subs] == [0, Fraction(1, 5), Fraction(2, 5), Fraction(3, 5)]


def test_a_line_shown_across_the_cut_starts_at_zero_shortened(clip, tmp_path, net,
                                                              style_png_module):
    out = tmp_path / "cut.mkv"
    # The line shown 0.8..0.95 s is on screen at 0.88 s: it stays, for its last 0.07 s.
    _render(clip, out, _job(style_png_module, Trim(Fraction(22, 25), Fraction(28, 25))), net)
    subs = _times(out, "subtitle")
    assert subs[0] == (0, Fraction(7, 100))
    assert [t for t, _ in subs[1:]] == [Fraction(3, 25)]  # the 1.0 s line, 0.12 s in


def test_chapters_are_cut_and_moved_with_the_trim(clip, tmp_path, net, style_png_module):
    src = with_extras(clip, tmp_path / "chapters.mkv", chapters=chapters(4, Fraction(1, 2)))
    out = tmp_path / "cut.mkv"
    _render(src, out, _job(style_png_module, Trim(Fraction(3, 5), Fraction(7, 5))), net)
    with av.open(str(out)) as c:
        got = [(Fraction(ch["start"]) * ch["time_base"], Fraction(ch["end"]) * ch["time_base"],
                ch["metadata"].get("title")) for ch in c.chapters()]
    # Parts 2 (0.5-1.0 s) and 3 (1.0-1.5 s) overlap 0.6-1.4 s; part 1 and 4 do not.
    assert got == [(0, Fraction(2, 5), "Part 2"), (Fraction(2, 5), Fraction(4, 5), "Part 3")]


def test_the_start_timecode_moves_on_by_the_frames_cut(tmp_path, net, style_png_module):
    src = make_clip(tmp_path / "tc.mov", frames=30, fps=FPS,
                    video_tags={"timecode": "01:00:00:00"})
    out = tmp_path / "cut.mov"
    job = replace(_job(style_png_module, Trim(Fraction(1, 2))), encode=EncodeOptions())
    _render(src, out, job, net)
    with av.open(str(out)) as c:
        tags = {k: v for s in c.streams for k, v in s.metadata.items()}
    # 0.5 s falls between frames 12 and 13: the output starts with frame 13, 0.02 s in.
    assert tags.get("timecode") == "01:00:00:13"
    assert _frame_times(out) == [Fraction(n, FPS) + Fraction(1, 50) for n in range(17)]


def test_keyframe_times_stay_on_the_source_clock(clip, tmp_path, net, style_png_module):
    other = tmp_path / "other.png"
    from PIL import Image
    Image.fromarray(np.full((64, 64, 3), (20, 200, 40), np.uint8)).save(other)
    show = tmp_path / "show.toml"
    show.write_text(f'[timeline]\nease = "hold"\n[[keyframe]]\nat = 0\nstyle = "{style_png_module}"'
                    f'\n[[keyframe]]\nat = "f30"\nstyle = "{other}"\n')
    timeline = jobs.resolve(jobs.Request(keyframes=show), Fraction(FPS)).look.timeline
    full, cut = tmp_path / "full.mkv", tmp_path / "cut.mkv"
    _render(clip, full, _job(style_png_module, timeline=timeline), net)
    _render(clip, cut, _job(style_png_module, Trim(Fraction(1), Fraction(8, 5)), timeline), net)
    full_frames, cut_frames = video_frames(full), video_frames(cut)
    assert len(cut_frames) == 15
    for n, frame in enumerate(cut_frames):  # the look changes at source frame 30 in both
        np.testing.assert_array_equal(frame, full_frames[25 + n], err_msg=f"output frame {n}")


@pytest.mark.parametrize("start, duration, end, expected", [
    ("f10", None, "f20", (Fraction(2, 5), Fraction(4, 5))),
    ("00:00:00:10", "00:00:00.4", None, (Fraction(2, 5), Fraction(4, 5))),
    (None, None, "1.5", (Fraction(0), Fraction(3, 2))),
    ("1", None, None, (Fraction(1), None)),
])
def test_the_request_reads_every_written_form(tmp_path, style_png, start, duration, end,
                                              expected):
    job = jobs.resolve(jobs.Request(styles=(style_png,), start=start, duration=duration,
                                    end=end), Fraction(FPS))
    assert (job.trim.start, job.trim.end) == expected


@pytest.mark.parametrize("fields, fps, message", [
    ({"duration": "1", "end": "2"}, FPS, r"^give duration or end, not both$"),
    ({"start": "2", "end": "1"}, FPS, r"^end '1' must come after start \(2 s\)$"),
    ({"duration": "0"}, FPS, r"^duration '0': must be longer than 0$"),
    ({"start": "f12"}, None, r"^start 'f12': the input states no frame rate"),
    ({"start": "soon"}, FPS, r"^start: cannot read time 'soon'; use seconds"),
])
def test_bad_trims_are_refused_naming_the_setting(style_png, fields, fps, message):
    with pytest.raises(OptionError, match=message):
        jobs.resolve(jobs.Request(styles=(style_png,), **fields), fps and Fraction(fps))


def test_a_start_past_the_end_or_a_range_without_frames_is_an_error(clip, tmp_path, net,
                                                                    style_png_module):
    out = tmp_path / "out.mkv"
    with pytest.raises(OptionError, match=r"start 3 s is at or past the end of .*in\.mkv "
                                          r"\(2\.0\d\d s\)"):
        _render(clip, out, _job(style_png_module, Trim(Fraction(3))), net)
    with pytest.raises(OptionError, match=r"has no frame from 1\.01 s to 1\.02 s; check start "
                                          r"and end"):
        _render(clip, out, _job(style_png_module, Trim(Fraction(101, 100), Fraction(102, 100))),
                net)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_render_takes_start_and_duration(tmp_path, adain_home, style_png):
    src = make_clip(tmp_path / "in.mp4", frames=20, fps=FPS, audio="aac")
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style",
                                 str(style_png), "--start", "00:00:00:05", "--duration", "0.2",
                                 "--precision", "fp32", "--style-size", "64"])
    assert result.exit_code == 0, result.output
    assert "(5 frames," in result.output
    assert _frame_times(out) == [Fraction(n, FPS) for n in range(5)]
    bad = runner.invoke(app, ["render", str(src), "--out", str(out), "--style", str(style_png),
                              "--start", "1", "--end", "0.5", "--overwrite"])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines()[-1] == \
        "vstpipe: error: --end '0.5' must come after --start (1 s)"


def test_the_progress_total_counts_the_trimmed_frames(clip):
    with open_source(clip) as source:
        assert source.expected_frames == 50
        source.trim(Trim(Fraction(1), Fraction(9, 5)))
        assert source.expected_frames == 20
        assert sum(isinstance(item, Frame) for item in source.items()) == 20


def test_a_trimmed_avi_keeps_its_constant_rate_grid_from_zero(tmp_path, net, style_png_module):
    src = make_clip(tmp_path / "in.avi", frames=20, fps=FPS, codec="mpeg4", audio="ac3")
    out = tmp_path / "out.avi"
    job = replace(_job(style_png_module, Trim(Fraction(2, 5), Fraction(4, 5))),
                  encode=EncodeOptions(codec="mpeg4"))
    _render(src, out, job, net)
    assert _frame_times(out) == [Fraction(n, FPS) for n in range(10)]
    assert _packets_in(out, "audio", Fraction(-1), Fraction(10)) == \
        _packets_in(src, "audio", Fraction(2, 5), Fraction(4, 5))
