"""Times as users write them, to exact seconds; SMPTE timecodes moved by whole frames. Pure.

One reader for every place a time is written: keyframe ``at`` values, ``render --start``,
``--duration`` and ``--end``. Accepted forms:

* seconds: ``4``, ``2.25`` (a number in TOML, or its text on the command line);
* a clock time ``HH:MM:SS[.fff]``;
* a SMPTE timecode ``HH:MM:SS:FF`` (non-drop) or ``HH:MM:SS;FF`` (drop-frame, 29.97/59.94),
  counted in frames of the video's rate as editing software does;
* a frame number ``f120``: frame 120 from the first, at 120 / fps seconds.

Digit counts are bounded in the patterns, so no string reaches int() or Fraction() at a length
that costs time: a time with thousands of digits is refused by the pattern itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Final

from .errors import ConfigError, VstpipeError
from .tomlspec import shown

MAX_SECONDS: Final = 1_000_000  # about 277 hours, however written
_CLOCK: Final = re.compile(r"^(\d{1,7}):([0-5]\d):([0-5]\d(?:\.\d{1,9})?)$")
_SMPTE: Final = re.compile(r"^(\d{1,7}):([0-5]\d):([0-5]\d)([:;])(\d{1,3})$")
_FRAME: Final = re.compile(r"^f(\d{1,12})$")
_NUMBER: Final = re.compile(r"^\d{1,12}(?:\.\d{1,9})?$")
FORMS: Final = 'seconds, HH:MM:SS[.fff], a timecode HH:MM:SS:FF, or a frame number like "f120"'


def parse(value: Any, fps: Fraction | None, where: str,
          error: type[VstpipeError] = ConfigError, setting: bool = False) -> Fraction:
    """Exact seconds from any accepted form; ``error`` (naming ``where``) if it is none of them,
    negative, past MAX_SECONDS, or a frame count without ``fps``. With ``setting``, ``where``
    is a setting's name, which each front end spells its own way (VstpipeError.about)."""
    def fail(message: str, **values: Any) -> VstpipeError:
        return error.about(("{" + where + "}" if setting else "{where}") + ": " + message,
                           where=where, shown=shown(value), **values)

    if isinstance(value, bool):
        raise fail("must be {forms}, got {shown}", forms=FORMS)
    if isinstance(value, int | float):
        if not 0 <= value <= MAX_SECONDS:  # also NaN and inf, before any conversion
            raise fail("time {shown} must be >= 0 and at most {limit} seconds",
                       limit=MAX_SECONDS)
        return Fraction(str(value))  # 0.1 means 1/10 s, not the nearest double
    text = value.strip() if isinstance(value, str) else None
    if text is not None and _NUMBER.match(text):
        seconds = Fraction(text)
    elif text is not None and (m := _CLOCK.match(text)):
        seconds = int(m[1]) * 3600 + int(m[2]) * 60 + Fraction(m[3])
    elif text is not None and (m := _SMPTE.match(text)):
        rate = _need_rate(fps, fail)
        seconds = Fraction(smpte_frames(int(m[1]), int(m[2]), int(m[3]), int(m[5]),
                                        m[4] == ";", rate, fail)) / rate
    elif text is not None and (m := _FRAME.match(text)):
        seconds = Fraction(int(m[1])) / _need_rate(fps, fail)
    else:
        raise fail("cannot read time {shown}; use {forms}", forms=FORMS)
    if seconds > MAX_SECONDS:
        raise fail("time {shown} is past {limit} seconds", limit=MAX_SECONDS)
    return seconds


def _need_rate(fps: Fraction | None, fail: Callable[..., VstpipeError]) -> Fraction:
    if not fps:
        raise fail("frame number {shown} needs a frame rate; give {fps}")
    return Fraction(fps)


def nominal(fps: Fraction) -> int:
    """Frames per timecode second: 30 for 29.97, 25 for 25."""
    return max(1, math.ceil(fps - Fraction(1, 100)))


def _drops(fps: Fraction) -> int:
    """Frame labels skipped each minute (but every tenth) by drop-frame timecode: 2 at 29.97."""
    return 2 * (nominal(fps) // 30)


def _plain(message: str, **values: Any) -> VstpipeError:
    return ConfigError.about(message, **values)


def smpte_frames(hours: int, minutes: int, seconds: int, frames: int, drop: bool,
                 fps: Fraction, fail: Callable[..., VstpipeError] = _plain) -> int:
    """The frame count a SMPTE label stands for; ``fail(...)`` raised for a label that cannot
    exist."""
    base = nominal(fps)
    if frames >= base:
        raise fail("timecode {shown} has frame {n}; at {rate:g} fps frames run 0..{top}",
                   n=frames, rate=float(fps), top=base - 1)
    count = ((hours * 60 + minutes) * 60 + seconds) * base + frames
    if not drop:
        return count
    skip = _drops(fps)
    if not skip:
        raise fail("drop-frame timecode {shown} (';') exists at 29.97 and 59.94 fps, not "
                   "{rate:g}; write HH:MM:SS:FF", rate=float(fps))
    if seconds == 0 and frames < skip and minutes % 10:
        raise fail("drop-frame timecode {shown} skips frames 0..{top} of minute {minute}",
                   top=skip - 1, minute=minutes)
    total_minutes = hours * 60 + minutes
    return count - skip * (total_minutes - total_minutes // 10)


def advance(label: str, frames: int, fps: Fraction) -> str | None:
    """The SMPTE label ``frames`` frames after ``label`` (same form), or None if ``label`` is
    not a timecode this can count at ``fps``."""
    m = _SMPTE.match(label.strip())
    if m is None or not fps:
        return None
    drop = m[4] == ";"
    try:
        count = smpte_frames(int(m[1]), int(m[2]), int(m[3]), int(m[5]), drop, fps) + frames
    except ConfigError:
        return None
    base = nominal(fps)
    if drop:  # the labels skipped up to ``count``, added back (SMPTE 12M's rule)
        skip = _drops(fps)
        per_ten = 10 * 60 * base - 9 * skip  # frames in ten minutes of drop-frame labels
        tens, rest = divmod(count, per_ten)
        count += 9 * skip * tens + (skip * ((rest - skip) // (60 * base - skip))
                                    if rest > skip else 0)
    ff = count % base
    ss = count // base
    return f"{ss // 3600:02d}:{ss // 60 % 60:02d}:{ss % 60:02d}{m[4]}{ff:02d}"
