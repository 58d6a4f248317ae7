"""driver.run: batching, copy-through in order, early stop on a closed sink, progress."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from vstpipe import driver
from vstpipe.media import Frame


def _frame(pts: int) -> Frame:
    return Frame(np.full((2, 2, 3), pts, np.uint8), pts, Fraction(1, 25))


class _Source:
    def __init__(self, items: list[object]) -> None:
        self._items = items

    def items(self):
        yield from self._items


class _Sink:
    def __init__(self, capacity: int | None = None) -> None:
        self.log: list[object] = []
        self.capacity = capacity  # frames taken before it closes, like a pipe's reader going

    @property
    def closed(self) -> bool:
        return self.capacity is not None and self.frames >= self.capacity

    @property
    def frames(self) -> int:
        return sum(isinstance(x, Frame) for x in self.log)

    def write(self, frame: Frame) -> None:
        self.log.append(frame)

    def copy(self, packet: object) -> None:
        self.log.append(packet)


def test_frames_go_in_batches_and_other_items_are_copied_as_they_come():
    batches: list[list[int]] = []

    def step(batch: list[Frame]) -> list[Frame]:
        batches.append([f.pts for f in batch])
        return batch

    items = [_frame(0), "audio", _frame(1), _frame(2), "sub", _frame(3), _frame(4)]
    sink, progress = _Sink(), []
    done = driver.run(_Source(items), step, sink, 2, lambda n, t: progress.append((n, t)), 5)
    assert done == 5
    assert batches == [[0, 1], [2, 3], [4]]
    assert [x if isinstance(x, str) else x.pts for x in sink.log] == \
        ["audio", 0, 1, "sub", 2, 3, 4]
    assert progress == [(2, 5), (4, 5), (5, 5)]


def test_a_closed_sink_stops_the_loop_without_error():
    stepped: list[int] = []

    def step(batch: list[Frame]) -> list[Frame]:
        stepped.extend(f.pts for f in batch)
        return batch

    sink = _Sink(capacity=2)
    done = driver.run(_Source([_frame(i) for i in range(7)]), step, sink, 2)
    assert done == 2
    assert stepped == [0, 1]


def test_frames_keep_their_pts_through_the_loop():
    sink = _Sink()
    frames = [_frame(p) for p in (0, 3, 4, 10)]  # variable frame rate
    driver.run(_Source(frames), lambda batch: batch, sink, 3)
    assert [f.pts for f in sink.log] == [0, 3, 4, 10]
