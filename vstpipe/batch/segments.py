"""One long input on many workers: split at keyframes, render the parts, join them exactly.

The input's video packets are read (not decoded) for the times of its frames and keyframes;
``count`` parts start at the keyframes nearest equal shares of the running time. Part i
renders the frames in [start_i, end_i) and, before them, ``warmup`` frames whose outputs are
dropped: the temporal methods (smoothed statistics, flow blending) reach the state a single
render would have at start_i, so the seam does not flicker. Each part is written losslessly
(FFV1, RGB at the input's bit depth) beside the output. The join reads the input once more
through the same Source as `render`, so every frame keeps its pts and audio, subtitles and data
are copied once, packet for packet, and takes each frame's pixels from its part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .. import driver, jobs
from ..errors import MediaError
from ..media import EncodeOptions, Frame, open_sink, open_source
from ..media.probing import open_container
from .plan import Look, Task

WARMUP = 48  # frames: a 0.9 EMA keeps 0.9^48 < 1% of the state it started from
PART_DIR = ".vstpipe-parts"


@dataclass(frozen=True)
class Part:
    index: int
    start: Fraction  # seconds from the input's first frame (a boundary between two frames)
    end: Fraction | None  # None: to the end
    warm_start: Fraction  # where its render starts, warm-up included
    warm_frames: int  # frames rendered only to set the temporal state
    frames: int  # frames it contributes


def frame_times(path: Path) -> tuple[list[Fraction], list[Fraction]]:
    """(every frame's time, the keyframes' times), in seconds from the first frame, from the
    video packets alone."""
    try:
        with open_container(path) as container:
            stream = container.streams.video[0]
            times, keys = [], []
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                t = Fraction(packet.pts) * Fraction(stream.time_base)
                times.append(t)
                if packet.is_keyframe:
                    keys.append(t)
    except (av.error.FFmpegError, IndexError) as exc:
        raise MediaError(f"{path}: cannot read its video packets to split it "
                         f"({type(exc).__name__})") from None
    if not times:
        raise MediaError(f"{path}: no video frames to split")
    times.sort()
    first = times[0]
    return [t - first for t in times], sorted(t - first for t in keys)


def split(times: list[Fraction], keys: list[Fraction], count: int, warmup: int) -> list[Part]:
    """At most ``count`` parts starting at keyframes; boundaries half-way between two frames,
    so no rounding moves a frame across one."""
    total = times[-1]
    starts: list[int] = [0]  # index in times of each part's first frame
    index_of = {t: i for i, t in enumerate(times)}
    for k in range(1, count):
        target = total * k / count
        key = min(keys, key=lambda t: abs(t - target), default=None)
        if key is None or key not in index_of:
            continue
        i = index_of[key]
        if i > starts[-1]:
            starts.append(i)
    bounds = [Fraction(0)] + [(times[i - 1] + times[i]) / 2 for i in starts[1:]]
    parts = []
    for n, i in enumerate(starts):
        stop = starts[n + 1] if n + 1 < len(starts) else len(times)
        w = max(0, i - warmup)
        warm_start = Fraction(0) if w == 0 else (times[w - 1] + times[w]) / 2
        parts.append(Part(n, bounds[n], bounds[n + 1] if n + 1 < len(bounds) else None,
                          warm_start, i - w, stop - i))
    return parts


def temporal_on(look: Look) -> bool:
    """Whether the look runs a temporal method (a part then needs a warm-up)."""
    job = jobs.resolve(look.request, Fraction(25))
    return any(value for _, value in job.temporal.values)


def part_tasks(task: Task, parts: list[Part], deep: bool) -> list[Task]:
    """The tasks that render ``parts`` of ``task`` into lossless files beside its output."""
    folder = task.output.parent / PART_DIR
    encode = EncodeOptions(codec="ffv1", pix_fmt="gbrp16le" if deep else "bgr0")
    # `auto` picks bf16 or fp32 per render, on its first frame and this worker's speed: parts
    # could differ, and a seam would show it. Every part takes fp32 then.
    precision = "fp32" if task.look.request.precision == "auto" else task.look.request.precision
    tasks = []
    for part in parts:
        request = dataclasses.replace(
            task.look.request, encode=encode, start=_seconds(part.warm_start),
            end=None if part.end is None else _seconds(part.end), duration=None,
            precision=precision)
        look = Look(task.look.name, request, task.look.files)
        tasks.append(Task(task.input, look, folder / f"{task.output.name}.part{part.index}.mkv"))
    return tasks


def _seconds(value: Fraction) -> str:
    return f"{float(value):.9f}"


def _part_frames(path: Path, skip: int, want: int) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        decoded = 0
        for frame in container.decode(video=0):
            decoded += 1
            if decoded <= skip:
                continue
            if decoded > skip + want:
                raise MediaError(f"{path.name}: more frames than its part of the input")
            fmt = "rgb48le" if frame.format.name.endswith("16le") else "rgb24"
            yield frame.to_ndarray(format=fmt)
        if decoded != skip + want:
            raise MediaError(f"{path.name}: {decoded} frames, expected {skip + want}")


def join(task: Task, parts: list[Part], files: list[Path], overwrite: bool) -> int:
    """Write ``task.output`` from the rendered parts, with the input's timing and streams;
    returns the frames written."""
    request = task.look.request
    with open_source(task.input, queue_size=request.queue) as source:
        job = jobs.resolve(request, Fraction(source.info.average_rate)
                           if source.info.average_rate else None)
        source.trim(job.trim)
        pixels = (frame for part, path in zip(parts, files, strict=True)
                  for frame in _part_frames(path, part.warm_frames, part.frames))

        def step(batch: list[Frame]) -> list[Frame]:
            out = []
            for frame in batch:
                rgb = next(pixels, None)
                if rgb is None:
                    raise MediaError(f"{task.input.name}: the parts have fewer frames than it")
                out.append(Frame(np.ascontiguousarray(rgb), frame.pts, frame.time_base))
            return out

        with open_sink(task.output, source.plan, job.encode, overwrite=overwrite) as sink:
            done = driver.run(source, step, sink, 1, None, source.expected_frames)
            if next(pixels, None) is not None:  # before the output is claimed
                raise MediaError(f"{task.input.name}: the parts have more frames than it")
    return done
