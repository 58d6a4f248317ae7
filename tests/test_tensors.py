"""Module tests for tensors.py: the network size, resizing, and the one pixel <-> tensor
conversion for uint8, uint16 and float32 frames, with pts and time base carried through."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vstpipe.media import Frame
from vstpipe.tensors import MIN_SIDE, network_size, resize, to_frames, to_tensor

CPU = torch.device("cpu")
TIME_BASE = Fraction(1, 90000)


def _frames(dtype: type, count: int = 3, size: tuple[int, int] = (20, 12), seed: int = 0
            ) -> list[Frame]:
    """``count`` random (H, W, 3) frames of ``dtype`` covering its whole range, VFR-like pts."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3)
    if dtype is np.float32:
        pixels = [rng.random(shape, dtype=np.float32) for _ in range(count)]
        pixels[0][0, 0] = (0.0, 1.0, 0.5)
    else:
        top = np.iinfo(dtype).max
        pixels = [rng.integers(0, top, shape, dtype=dtype, endpoint=True) for _ in range(count)]
        pixels[0][0, 0] = (0, top, top // 2)  # both ends of the scale always present
    pts = [None, 3003, 3003 + 1501][:count]  # no pts, then uneven steps
    return [Frame(p, t, TIME_BASE) for p, t in zip(pixels, pts)]


# --- network_size -----------------------------------------------------------------------------


@pytest.mark.parametrize("width, height, max_side, expected", [
    (1920, 1080, None, (1920, 1080)),  # already multiples of 8
    (1921, 1083, None, (1920, 1080)),  # floored to multiples of 8
    (1920, 1080, 960, (960, 536)),  # halved: 540 floors to 536
    (1080, 1920, 960, (536, 960)),  # portrait: the longer side is the height
    (1280, 720, 4096, (1280, 720)),  # max_side never enlarges
    (1280, 720, 1280, (1280, 720)),  # exactly max_side: unchanged
    (10, 10, None, (MIN_SIDE, MIN_SIDE)),  # tiny: the floor
    (7, 300, None, (MIN_SIDE, 296)),  # one tiny side
    (1000, 20, 104, (104, MIN_SIDE)),  # scaling a thin strip would make its short side 0
])
def test_network_size(width: int, height: int, max_side: int | None, expected):
    assert network_size(width, height, max_side) == expected


@pytest.mark.parametrize("width, height, side, expected", [
    (176, 144, 320, (320, 256)),  # QCIF enlarged to a model's working size: 261.8 floors to 256
    (640, 272, 320, (320, 136)),  # larger frames shrink as with max_side
    (320, 240, 320, (320, 240)),  # already there
    (176, 144, None, (176, 144)),  # without a working size, the frame's own
])
def test_network_size_grows_small_frames_to_a_working_size(width, height, side, expected):
    assert network_size(width, height, side, grow=True) == expected


def test_network_size_is_a_multiple_of_8_within_max_side_keeping_the_aspect():
    for width in range(16, 2000, 37):
        for height in range(16, 1200, 29):
            for max_side in (None, 64, 333, 1024):
                w, h = network_size(width, height, max_side)
                assert w % 8 == 0 and h % 8 == 0 and min(w, h) >= MIN_SIDE
                assert w <= width and h <= height
                if max_side is not None:
                    assert max(w, h) <= max(max_side, MIN_SIDE)
                    scale = min(1.0, max_side / max(width, height))
                    # each side is the scaled side floored to 8, unless the floor of 16 applies
                    assert w == max(MIN_SIDE, int(width * scale) // 8 * 8)
                    assert h == max(MIN_SIDE, int(height * scale) // 8 * 8)
                    if min(w, h) > MIN_SIDE:  # both sides lose under 8 px to the flooring
                        assert width * scale - 8 < w <= width * scale
                        assert height * scale - 8 < h <= height * scale


# --- resize -----------------------------------------------------------------------------------


def test_resize_to_the_same_size_returns_the_tensor_itself():
    x = torch.rand(2, 3, 12, 20)
    assert resize(x, (20, 12)) is x


def test_resize_takes_width_then_height():
    assert resize(torch.rand(1, 3, 12, 20), (8, 16)).shape == (1, 3, 16, 8)


def test_resize_shrinks_antialiased_and_enlarges_bilinear():
    x = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    smooth = F.interpolate(x, size=(6, 8), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(resize(x, (8, 6)), smooth, rtol=0, atol=0)
    aliased = F.interpolate(x, size=(6, 8), mode="bilinear", align_corners=False)
    assert not torch.allclose(smooth, aliased, atol=1e-3)
    # One side shrinking is enough to filter.
    torch.testing.assert_close(resize(x, (64, 12)), F.interpolate(
        x, size=(12, 64), mode="bilinear", align_corners=False, antialias=True), rtol=0, atol=0)
    torch.testing.assert_close(resize(x, (64, 48)), F.interpolate(
        x, size=(48, 64), mode="bilinear", align_corners=False), rtol=0, atol=0)


def test_resize_keeps_a_flat_picture_flat():
    x = torch.full((1, 3, 10, 14), 0.3)
    for size in ((7, 5), (28, 20), (3, 40)):
        torch.testing.assert_close(resize(x, size), torch.full((1, 3, size[1], size[0]), 0.3))


# --- to_tensor --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, scale", [(np.uint8, 255.0), (np.uint16, 65535.0),
                                          (np.float32, 1.0)])
def test_to_tensor_scales_each_depth_to_the_unit_range(dtype: type, scale: float):
    frames = _frames(dtype)
    x = to_tensor(frames, (20, 12), CPU)
    assert x.shape == (3, 3, 12, 20) and x.dtype == torch.float32 and x.device == CPU
    expected = torch.from_numpy(np.stack([f.rgb for f in frames]).astype(np.float64) / scale)
    torch.testing.assert_close(x, expected.permute(0, 3, 1, 2).float())
    assert x.min() == 0.0 and x.max() == 1.0  # both ends of the scale map to 0 and 1 exactly


def test_to_tensor_resizes_to_the_network_size():
    frames = _frames(np.uint8, size=(40, 24))
    x = to_tensor(frames, (16, 16), CPU)
    assert x.shape == (3, 3, 16, 16)
    torch.testing.assert_close(x, resize(to_tensor(frames, (40, 24), CPU), (16, 16)),
                               rtol=0, atol=0)


def test_to_tensor_leaves_the_frames_alone():
    frames = _frames(np.uint16)
    before = [f.rgb.copy() for f in frames]
    to_tensor(frames, (10, 6), CPU).mul_(0)  # a tensor that shared memory would show this
    for frame, pixels in zip(frames, before):
        np.testing.assert_array_equal(frame.rgb, pixels)


# --- to_frames --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, depth", [(np.uint8, 8), (np.uint16, 16), (np.float32, 32)])
def test_frames_survive_a_round_trip_at_their_own_depth(dtype: type, depth: int):
    frames = _frames(dtype)
    out = to_frames(to_tensor(frames, (20, 12), CPU), frames, (20, 12), depth)
    assert len(out) == len(frames)
    for before, after in zip(frames, out):
        assert after.rgb.dtype == dtype and after.rgb.shape == (12, 20, 3)
        assert after.rgb.flags.c_contiguous
        np.testing.assert_array_equal(after.rgb, before.rgb)
        assert (after.pts, after.time_base) == (before.pts, before.time_base)


def test_to_frames_carries_pts_and_time_base_untouched():
    like = [Frame(np.zeros((4, 4, 3), np.uint8), pts, tb) for pts, tb in (
        (None, Fraction(1, 25)), (0, Fraction(1001, 30000)), (2**40, Fraction(1, 1000)))]
    out = to_frames(torch.rand(3, 3, 8, 8), like, (8, 8), 8)
    assert [(f.pts, f.time_base) for f in out] == [(f.pts, f.time_base) for f in like]


def test_to_frames_clamps_and_rounds_to_the_depth():
    x = torch.tensor([-0.5, 0.0, 0.2, 0.35, 0.999, 1.0, 7.0]).view(1, 1, 1, 7).expand(1, 3, 1, 7)
    like = _frames(np.uint8, count=1)
    (eight,) = to_frames(x, like, (7, 1), 8)
    np.testing.assert_array_equal(eight.rgb[0, :, 0], [0, 0, 51, 89, 255, 255, 255])
    (sixteen,) = to_frames(x, like, (7, 1), 16)
    np.testing.assert_array_equal(sixteen.rgb[0, :, 0],
                                  [0, 0, 13107, 22937, 65469, 65535, 65535])
    assert sixteen.rgb.dtype == np.uint16
    (floats,) = to_frames(x, like, (7, 1), 32)
    # float output is clamped, never quantised
    np.testing.assert_array_equal(floats.rgb[0, :, 0],
                                  np.array([0.0, 0.0, 0.2, 0.35, 0.999, 1.0, 1.0], np.float32))


def test_to_frames_converts_between_depths():
    frames = _frames(np.uint16, count=2)
    out = to_frames(to_tensor(frames, (20, 12), CPU), frames, (20, 12), 8)
    for before, after in zip(frames, out):
        assert after.rgb.dtype == np.uint8
        np.testing.assert_array_equal(after.rgb, np.round(before.rgb / 65535 * 255))


def test_to_frames_resizes_to_the_output_size():
    frames = _frames(np.uint8, count=2, size=(20, 12))
    x = to_tensor(frames, (16, 16), CPU)
    out = to_frames(x, frames, (20, 12), 8)
    assert [f.rgb.shape for f in out] == [(12, 20, 3)] * 2
    expected = to_frames(resize(x, (20, 12)), frames, (20, 12), 8)
    for a, b in zip(out, expected):
        np.testing.assert_array_equal(a.rgb, b.rgb)


def test_to_frames_takes_inference_and_low_precision_tensors():
    like = _frames(np.uint8, count=2, size=(8, 8))
    with torch.inference_mode():
        x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    for depth in (8, 16, 32):  # no in-place update of an inference tensor out here
        assert len(to_frames(x, like, (8, 8), depth)) == 2
    halves = to_frames(x.bfloat16(), like, (8, 8), 32)
    assert halves[0].rgb.dtype == np.float32
    np.testing.assert_allclose(halves[0].rgb, x[0].permute(1, 2, 0).numpy(), atol=4e-3)


def test_to_frames_refuses_other_depths():
    with pytest.raises(ValueError, match="depth must be 8, 16 or 32, got 10"):
        to_frames(torch.rand(1, 3, 8, 8), _frames(np.uint8, count=1), (8, 8), 10)
