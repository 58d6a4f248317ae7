"""StreamPlan: what an output needs to know of its input, fixed when the input is opened.

A Sink takes a StreamPlan, never a Source: the video's description (size, rate, colour,
depth) and the streams, chapters, tags and flags to carry over, as snapshots. So a Sink cannot
reach into a demuxer another thread owns, and anything that can describe its stream this way
can feed one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from av.stream import Disposition, Stream

from .frames import VideoInfo


@dataclass(frozen=True)
class Window:
    """The part of the input a trimmed render keeps, on the input's clock (seconds)."""

    origin: Fraction  # the input's first frame
    cut: Fraction  # the trim's start: output time 0 (output time = input time - cut)
    stop: Fraction | None  # exclusive; None: to the end
    time_base: Fraction  # of the video's pts: times within half a tick count as equal

    def frames_before(self, rate: Fraction, at: Fraction | None = None) -> int:
        """Frames of a ``rate`` video that start before ``at`` (default: the cut), counting
        from the first; a frame within half a tick of it is not before it."""
        at = self.cut if at is None else at
        return max(0, math.floor((at - self.origin - self.time_base / 2) * rate) + 1)


@dataclass(frozen=True)
class StreamPlan:
    info: VideoInfo  # the stylized video stream: size, rate, time base, colour, depth
    video_index: int  # its index in the input file
    display_matrix: tuple[int, ...] | None  # 3x3 rotation/flip matrix as 9 int32s, or None
    # Input streams passed through as packets (audio, subtitles, data, cover art, further
    # video; attachments, which have no packets, too). Valid while the input is open: read
    # their settings, never demux or decode them.
    copied_streams: tuple[Stream, ...]
    chapters: tuple[Mapping[str, object], ...]  # id, start, end, time_base, metadata
    timecode: str | None  # start timecode ("01:02:03:04") of a tmcd track or tag, or None
    has_alpha: bool  # the video has an alpha channel, which RGB frames do not carry
    mastering_display: bytes | None  # HDR AVMasteringDisplayMetadata bytes, or None
    content_light: bytes | None  # HDR AVContentLightMetadata bytes (MaxCLL, MaxFALL), or None
    field_order: int  # FFmpeg's AVFieldOrder: 0 unknown, 1 progressive, 2-5 interlaced
    metadata: Mapping[str, str]  # container tags (title, comment, creation_time ...)
    video_metadata: Mapping[str, str]  # video stream tags (language, title, handler_name ...)
    video_disposition: Disposition  # video stream flags (default, forced ...)
    window: Window | None = None  # a trimmed render's part of the input
