"""The one frame loop: items from a source, frames in batches through a step, into a sink.

``render`` (file -> file), ``filter`` (raw pipe -> raw pipe) and the OpenFX host's
``render_video`` all run here, so batching, packet copy-through, early stop and progress
behave the same everywhere. Time is the frames' own pts: the loop never numbers frames for a
step to derive time from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from .media.frames import Frame

Progress = Callable[[int, int | None], None]  # (frames done, frames expected or None)
Step = Callable[[list[Frame]], list[Frame]]  # a batch in presentation order -> output frames


class FrameSource(Protocol):
    """Video Frames in presentation order, with other items (e.g. packets to copy) between."""

    def items(self) -> Iterator[object]: ...


class FrameSink(Protocol):
    """Takes output frames and the source's copy-through items."""

    @property
    def closed(self) -> bool:
        """True once the sink takes nothing more (e.g. its reader went away): stop early."""
        ...

    def write(self, frame: Frame) -> None: ...

    def copy(self, packet: object) -> None: ...


def run(source: FrameSource, step: Step, sink: FrameSink, batch: int,
        progress: Progress | None = None, total: int | None = None) -> int:
    """Feed ``source``'s frames to ``step`` ``batch`` at a time, in order, writing what it
    returns to ``sink``; anything else the source yields is copied to the sink as it comes.

    Stops early, without error, once the sink is closed. ``progress`` is called after each
    batch with the frames done and ``total``. Returns the frames stepped.
    """
    done = 0
    pending: list[Frame] = []

    def flush() -> None:
        nonlocal done, pending
        for frame in step(pending):
            sink.write(frame)
        done += len(pending)
        pending = []
        if progress:
            progress(done, total)

    for item in source.items():
        if not isinstance(item, Frame):
            sink.copy(item)
            continue
        pending.append(item)
        if len(pending) == batch:
            flush()
            if sink.closed:
                return done
    if pending and not sink.closed:
        flush()
    return done
