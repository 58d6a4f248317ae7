"""The frame types every source and sink speaks, and the frame-size limits; no PyAV here.

A :class:`Frame` is RGB pixels plus the pts and time base of the input frame they came
from, whether a file (decode), a raw pipe (rawio) or an effect host made them, so code
that only moves frames need not know about containers. :class:`VideoInfo` is what probing
an input file tells the rest of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

import numpy as np


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
class Trim:
    """The part of an input to render, in seconds from its first frame (frame numbers and
    timecodes are read into these by timecode.py). A frame is in when its time is at or after
    ``start`` and before ``end``; the output's clock starts at ``start``."""

    start: Fraction = Fraction(0)
    end: Fraction | None = None  # exclusive; None: to the end of the input

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end is None


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
    # How FFmpeg opens it again (an image sequence: "image2" with its rate and first number).
    demuxer: str | None = None
    demuxer_options: tuple[tuple[str, str], ...] = ()
    start_number: int | None = None  # an image sequence's first frame number
