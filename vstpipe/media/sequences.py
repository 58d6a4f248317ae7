"""Stills and image sequences: which paths name them, and how FFmpeg reads and writes them.

A path whose file name holds a printf counter (``shot/%05d.png``, ``f_%d.exr``) is an image
sequence; a path ending in an image suffix without one is a single still. Both go through
FFmpeg's image2 demuxer and muxer, so a sequence is a video like any other (pts = frame number
at ``--fps``) and a still a one-frame video. Pure: paths, names and numbers; no PyAV here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

from vstpipe.errors import MediaError, OptionError

_COUNTER: Final = re.compile(r"%(0?\d{0,2})d")
# Encoder of each image suffix, and its RGB pixel format for 8-bit and for deeper frames.
IMAGE_CODECS: Final = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".exr": "exr",
                       ".dpx": "dpx", ".jpg": "mjpeg", ".jpeg": "mjpeg"}
_PIX_FMTS: Final = {"png": ("rgb24", "rgb48be"), "tiff": ("rgb24", "rgb48le"),
                    "dpx": ("rgb24", "rgb48le"), "exr": ("gbrpf32le", "gbrpf32le"),
                    "mjpeg": ("yuvj444p", "yuvj444p")}
DEFAULT_FPS: Final = Fraction(25)  # FFmpeg's for image sequences too
MAX_FPS: Final = 1000


def is_sequence(path: Path) -> bool:
    """A file name with one printf counter: ``%d`` or ``%05d``."""
    return len(_COUNTER.findall(Path(path).name)) == 1 and "%" not in _COUNTER.sub(
        "", Path(path).name)


def is_image(path: Path) -> bool:
    """A still image or image sequence by its suffix (one FFmpeg reads and writes)."""
    return Path(path).suffix.lower() in IMAGE_CODECS


def image_codec(path: Path) -> str | None:
    return IMAGE_CODECS.get(Path(path).suffix.lower())


def image_pix_fmt(codec: str, deep: bool) -> str | None:
    """The RGB pixel format a frame of that depth is written in, for an image encoder."""
    pair = _PIX_FMTS.get(codec)
    return None if pair is None else pair[1 if deep else 0]


def name_of(pattern: Path, number: int) -> Path:
    """The file of frame ``number`` of a sequence."""
    return Path(pattern).with_name(Path(pattern).name % number)


@dataclass(frozen=True)
class Sequence:
    """The files of an input sequence that exist, in frame order."""

    pattern: Path
    first: int  # the first frame's number
    count: int  # files from ``first`` on without a gap


def find(pattern: Path) -> Sequence:
    """The sequence ``pattern`` names, from its lowest number up to its first gap;
    MediaError when no file matches."""
    pattern = Path(pattern)
    name = pattern.name
    m = _COUNTER.search(name)
    if m is None or not is_sequence(pattern):
        raise MediaError(f"{pattern}: not an image sequence pattern; use one counter such as "
                         f"%05d in the file name")
    width = m[1]
    digits = rf"\d{{{int(width)}}}" if width.startswith("0") and width[1:] else r"\d+"
    matcher = re.compile(re.escape(name[:m.start()]) + f"({digits})"
                         + re.escape(name[m.end():]) + "$")
    folder = pattern.parent
    try:
        numbers = sorted(int(found[1]) for p in folder.iterdir()
                         if (found := matcher.match(p.name)) and p.is_file())
    except OSError:
        numbers = []
    if not numbers:
        raise MediaError(f"{pattern}: no file matches this sequence in {folder}")
    first, count = numbers[0], 1
    present = set(numbers)
    while first + count in present:
        count += 1
    return Sequence(pattern, first, count)


def check_fps(fps: Fraction | None) -> Fraction:
    """The frame rate of a sequence input (``--fps``), FFmpeg's 25 when not given."""
    if fps is None:
        return DEFAULT_FPS
    if not 0 < fps <= MAX_FPS:
        raise OptionError.about("{fps} {value}: use a frame rate above 0 and at most {top}",
                               value=f"{float(fps):g}", top=MAX_FPS)
    return Fraction(fps)
