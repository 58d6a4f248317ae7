"""Telling a cut file from a whole one: what the header promises, how far decoding got.

:func:`header_promise` reads the frame count and end times an input's header states when it
is opened; :class:`Reading` follows the decode thread; :meth:`Promise.shortfall` compares
the two at the end and says how the decoded part falls short, if it does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import av
from av.container import InputContainer
from av.video.stream import VideoStream

_DURATION_TAG: Final = re.compile(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


def _tag(tags: Mapping[str, str], name: str) -> str | None:
    """A stream tag by name, in any case, also with the language suffix mkvmerge adds."""
    for key, value in tags.items():
        if key.upper() in (name, f"{name}-ENG"):
            return value
    return None


def _tag_seconds(text: str | None) -> Fraction | None:
    # Matroska's per-track DURATION tag, "HH:MM:SS.nnnnnnnnn" (FFmpeg and mkvmerge write it).
    match = _DURATION_TAG.match(text.strip()) if text else None
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return (int(hours) * 3600 + int(minutes) * 60) + Fraction(seconds)


@dataclass(frozen=True)
class Promise:
    """What the input's header promises, so a cut file is told from a whole one.

    Durations are read two ways where formats disagree: FFmpeg's stream duration counts
    from the stream's start (mp4, AVI), while Matroska's DURATION tag and segment duration,
    and FLV's, are where the stream ends. ``strict_end`` takes the later reading (to excuse
    a short frame count, it must be reached); ``lenient_end`` the earlier one (to call a
    file cut without a frame count, decoding must stop short of even that).
    """

    frames: int | None  # an exact count the container declares (mp4, AVI, mkvmerge tags)
    strict_end: Fraction | None  # the video's end, the later reading (seconds)
    lenient_end: Fraction | None  # the video's end, the earlier reading (seconds)
    container_end: Fraction | None  # the longest stream's end, the earlier reading (seconds)
    rate: Fraction | None  # nominal frames per second, for "about N frames"
    duration: Fraction | None  # the video's (else the container's) duration, seconds
    # The longest nominal frame duration the stream states (AVI's header rate counts empty
    # drop-frame chunks, so its guessed rate may be the slower, truer one); seconds.
    frame_length: Fraction = Fraction(0)

    @property
    def about(self) -> int | None:
        """The frame count the durations imply, when no exact count is declared."""
        if self.frames:
            return self.frames
        if self.duration is not None and self.rate:
            return round(self.duration * self.rate)
        return None

    def shortfall(self, decoded: int, discarded: int, video_end: Fraction | None,
                  any_end: Fraction | None) -> str | None:
        """How the decoded part falls short of the promise ("decoded 7 of 12 frames"), or None.

        An exact count decides, except that an AVI counts its empty drop-frame chunks as
        frames: a short count is excused when the video still reached its declared end.
        Without a count, times decide, with half a frame of slack for rounding: the video's
        end against the video's declared end, else the end of any stream against the
        container's duration (a whole file whose audio outlasts its video reaches it
        through the audio).
        """
        slack = Fraction(1, 2) / self.rate if self.rate else Fraction(1, 50)

        def reached(end: Fraction | None, promised: Fraction) -> bool:
            return end is not None and end >= promised - slack

        if self.frames:
            expected = self.frames - discarded  # frames an edit list cuts are never output
            if decoded >= expected or (self.strict_end is not None
                                       and reached(video_end, self.strict_end)):
                return None
            promised, count, end = self.strict_end, f"{expected}", video_end
        elif self.lenient_end is not None:
            if reached(video_end, self.lenient_end):
                return None
            promised, count, end = self.lenient_end, f"about {self.about}", video_end
        elif self.container_end is not None:
            if reached(any_end, self.container_end):
                return None
            promised, count, end = self.container_end, f"about {self.about}", any_end
        else:
            return None
        if self.about is None:
            count = "more"
        times = "" if promised is None else (
            f" (the header promises {float(promised):.3f} s of video, decoding ended at "
            f"{float(end or 0):.3f} s)")
        return f"decoded {decoded} of {count} frames{times}"


def _ends(start: Fraction | None, duration: Fraction | None
          ) -> tuple[Fraction | None, Fraction | None]:
    """(later, earlier) readings of where something that lasts ``duration`` ends."""
    if duration is None:
        return None, None
    if start is None:
        return duration, duration
    return max(duration, start + duration), min(duration, start + duration)


def header_promise(container: InputContainer, video: VideoStream, rate: Fraction | None
                   ) -> Promise:
    """What the header of ``container`` promises about ``video``, playing at ``rate``."""
    time_base = video.time_base or Fraction(1, 90000)
    frames = video.frames or None
    counted = _tag(video.metadata, "NUMBER_OF_FRAMES")  # mkvmerge's statistics tag
    if frames is None and counted is not None and counted.isdigit():
        frames = int(counted) or None
    start = video.start_time * time_base if video.start_time is not None else None
    if video.duration:
        video_duration = video.duration * time_base
        strict_end = lenient_end = (start or 0) + video_duration  # counted from the start
    else:
        video_duration = _tag_seconds(_tag(video.metadata, "DURATION"))
        strict_end, lenient_end = _ends(start, video_duration)
    duration = container_end = None
    if container.duration is not None:
        duration = Fraction(container.duration, av.time_base)
        container_start = (Fraction(container.start_time, av.time_base)
                           if container.start_time is not None else None)
        container_end = _ends(container_start, duration)[1]
    if lenient_end is not None and start is not None:
        video_duration = lenient_end - start  # the span, whichever reading the format uses
    rates = [r for r in (video.average_rate, video.guessed_rate) if r]
    return Promise(frames, strict_end, lenient_end, container_end, rate,
                   video_duration if video_duration is not None else duration,
                   max((1 / r for r in rates), default=Fraction(0)))


@dataclass
class Reading:
    """How far the decode thread got, for the check against the header's promise."""

    time_base: Fraction  # of the video's pts
    frame_length: Fraction  # the longest nominal frame duration (seconds), see Promise
    discarded: int = 0  # video packets the container marks as cut by an edit list
    decoded: int = 0
    last_pts: int | None = None  # as decoded, for messages
    video_end: Fraction | None = None  # end time of the latest video frame (seconds)
    any_end: Fraction | None = None  # end time of the latest frame or copied packet

    def saw_frame(self, frame: av.VideoFrame) -> None:
        self.decoded += 1
        self.last_pts = frame.pts
        if frame.pts is None:
            return
        time_base = self.time_base
        # At least one nominal frame: AVI says one tick even where empty drop-frame
        # chunks stretch a frame, and many files leave the last frame's duration unstated.
        length = max(frame.duration * time_base if frame.duration else Fraction(0),
                     self.frame_length)
        end = frame.pts * time_base + length
        self.video_end = end if self.video_end is None else max(self.video_end, end)
        self._reach(end)

    def saw_packet(self, packet: av.Packet) -> None:
        if packet.pts is None or packet.time_base is None:
            return
        self._reach((packet.pts + (packet.duration or 0)) * packet.time_base)

    def _reach(self, end: Fraction) -> None:
        self.any_end = end if self.any_end is None else max(self.any_end, end)
