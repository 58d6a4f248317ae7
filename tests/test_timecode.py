"""timecode.py: every written form of a time to exact seconds; SMPTE labels moved by frames."""

from __future__ import annotations

from fractions import Fraction

import pytest

from vstpipe import timecode
from vstpipe.errors import ConfigError, OptionError

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize("value, fps, seconds", [
    ("12", None, Fraction(12)), ("0.04", None, Fraction(1, 25)), (1.5, None, Fraction(3, 2)),
    ("00:01:00.5", None, Fraction(121, 2)),
    ("00:00:01:12", Fraction(25), Fraction(37, 25)),  # 1 s and 12 frames at 25 fps
    ("f120", Fraction(25), Fraction(24, 5)),
    # Non-drop timecode at 29.97 counts 30 labels a second: 00:01:00:00 is frame 1800.
    ("00:01:00:00", NTSC, Fraction(1800) / NTSC),
    # Drop-frame skips labels 0 and 1 at each minute but every tenth: 00:01:00;02 is frame 1800.
    ("00:01:00;02", NTSC, Fraction(1800) / NTSC),
    ("00:10:00;00", NTSC, Fraction(17982) / NTSC),  # ten minutes hold 17982 frames
])
def test_each_form_reads_as_exact_seconds(value, fps, seconds):
    assert timecode.parse(value, fps, "x") == seconds


@pytest.mark.parametrize("value, fps, message", [
    ("f12", None, r"^--start: frame number 'f12' needs a frame rate"),
    ("00:00:01:25", Fraction(25),
     r"^--start: timecode '00:00:01:25' has frame 25; at 25 fps frames run 0\.\.24$"),
    ("00:01:00;00", NTSC, r"skips frames 0\.\.1 of minute 1$"),
    ("00:00:01;00", Fraction(25), r"exists at 29\.97 and 59\.94 fps, not 25"),
    ("1:2", None, r"^--start: cannot read time '1:2'; use seconds, HH:MM:SS\[\.fff\]"),
    ("-1", None, r"cannot read time '-1'"),
    (float("nan"), None, r"must be >= 0"),
    ("9999999:00:00", None, r"is past 1000000 seconds$"),
])
def test_what_is_not_a_time_is_refused_naming_the_place(value, fps, message):
    with pytest.raises(OptionError, match=message):
        timecode.parse(value, fps, "--start", OptionError)


def test_the_default_error_is_a_config_error():
    with pytest.raises(ConfigError):
        timecode.parse("soon", None, "show.toml [[keyframe]] #1 'at'")


@pytest.mark.parametrize("label, frames, fps, after", [
    ("01:00:00:00", 50, Fraction(25), "01:00:02:00"),
    ("00:59:59:24", 1, Fraction(25), "01:00:00:00"),
    ("00:00:59;29", 1, NTSC, "00:01:00;02"),  # the dropped labels are skipped
    ("00:09:59;29", 1, NTSC, "00:10:00;00"),  # ... but not at a tenth minute
    ("00:00:00;00", 17982, NTSC, "00:10:00;00"),
])
def test_a_timecode_advances_by_frames(label, frames, fps, after):
    assert timecode.advance(label, frames, fps) == after


def test_advance_and_parse_agree_on_every_drop_frame_label_of_an_hour():
    for count in range(0, 108_000, 997):
        label = timecode.advance("00:00:00;00", count, NTSC)
        assert timecode.parse(label, NTSC, "x") * NTSC == count, label
