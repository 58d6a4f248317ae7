"""ofx_host time: OpenFX time (frames) comes from pts, never from the frame's index."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from vstpipe.errors import MediaError
from vstpipe.media import Frame
from vstpipe.ofx_host import frame_time


def _frame(pts: int | None, time_base: Fraction = Fraction(1, 1000)) -> Frame:
    return Frame(np.zeros((2, 2, 3), np.uint8), pts, time_base)


def test_time_counts_frames_from_the_first_pts_at_the_stated_rate():
    rate = Fraction(25)
    # Variable frame rate: a gap of 120 ms is 3 frames at 25 fps, whatever the index.
    assert [frame_time(_frame(p), 1000, rate) for p in (1000, 1040, 1160)] == [0.0, 1.0, 4.0]


def test_a_frame_without_pts_is_an_error_not_its_index():
    with pytest.raises(MediaError, match="no timestamp"):
        frame_time(_frame(None), 0, Fraction(25))
