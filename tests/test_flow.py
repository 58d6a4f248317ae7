"""Module tests for flow.py: DIS flow on a known shift, warping along a flow, the occlusion
test's thresholds and frame border, grey conversion, and DIS's minimum size."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from mediatools import smooth_texture

from vstpipe.errors import OptionError
from vstpipe.flow import (
    MIN_FLOW_SIDE,
    DisFlow,
    cv2_module,
    occlusion_mask,
    pixel_grid,
    to_gray8,
    warp,
)

cv2 = pytest.importorskip("cv2")

H, W = 72, 96
SHIFT = (3, -2)  # (dx, dy): frame t shows at x what frame r shows at x + SHIFT
MARGIN = 12  # interior: away from the strip the shift uncovers and from DIS's border patches


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """(current t, reference r) cut from one canvas so that t(x) = r(x + SHIFT) exactly."""
    (dx, dy), pad = SHIFT, 8
    canvas = smooth_texture(H + 2 * pad, W + 2 * pad)
    ref = canvas[pad:pad + H, pad:pad + W]
    cur = canvas[pad + dy:pad + dy + H, pad + dx:pad + dx + W]
    return np.ascontiguousarray(cur), np.ascontiguousarray(ref)


@pytest.fixture(scope="module")
def dis_flows(pair) -> tuple[np.ndarray, np.ndarray]:
    cur, ref = pair
    return DisFlow().pair(to_gray8(cur), to_gray8(ref))


def _interior(a: np.ndarray) -> np.ndarray:
    return a[MARGIN:-MARGIN, MARGIN:-MARGIN]


def _constant_flow(dx: float, dy: float, height: int = H, width: int = W) -> np.ndarray:
    flow = np.empty((height, width, 2), np.float32)
    flow[...] = (dx, dy)
    return flow


# --- cv2_module, pixel_grid, to_gray8 ---------------------------------------------------------


def test_cv2_module_is_opencv():
    assert cv2_module() is cv2


def test_without_opencv_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    with pytest.raises(OptionError, match=r"^optical flow needs OpenCV, which is not installed; "
                                          r"run: pip install opencv-python-headless$"):
        cv2_module()
    with pytest.raises(OptionError, match="optical flow needs OpenCV"):
        DisFlow()


def test_pixel_grid_is_the_identity_map_shared_read_only():
    grid = pixel_grid(3, 5)
    assert grid.shape == (3, 5, 2) and grid.dtype == np.float32
    assert tuple(grid[2, 4]) == (4.0, 2.0) and tuple(grid[1, 0]) == (0.0, 1.0)
    assert pixel_grid(3, 5) is grid
    with pytest.raises(ValueError):
        grid[0, 0, 0] = 1.0


def test_to_gray8_is_bt601_luma_in_8_bits():
    rgb = np.array([[[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5],
                     [2, 2, 2]]], np.float32)
    gray = to_gray8(rgb)
    assert gray.dtype == np.uint8 and gray.shape == (1, 7)
    np.testing.assert_array_equal(gray[0], [0, 255, 76, 150, 29, 128, 255])  # 2.0 saturates
    tex = smooth_texture(16, 24, seed=3)
    expected = (tex @ np.array([0.299, 0.587, 0.114], np.float32)) * 255
    assert np.abs(to_gray8(tex) - expected).max() <= 0.51


# --- DisFlow ----------------------------------------------------------------------------------


def test_dis_recovers_a_known_shift_in_both_directions(dis_flows):
    forward, backward = dis_flows
    assert forward.shape == backward.shape == (H, W, 2) and forward.dtype == np.float32
    for flow, expected in ((forward, SHIFT), (backward, (-SHIFT[0], -SHIFT[1]))):
        error = np.abs(_interior(flow) - np.float32(expected))
        assert error.max() < 0.25 and error.mean() < 0.05, (expected, error.max(), error.mean())


def test_dis_of_a_still_picture_is_zero(pair):
    gray = to_gray8(pair[1])
    forward, backward = DisFlow().pair(gray, gray)
    assert np.abs(forward).max() < 0.05 and np.abs(backward).max() < 0.05


def test_dis_needs_min_flow_side_pixels_on_both_sides():
    """Below it OpenCV refuses (11x11) or crashes the process (12x40, 8x100): a typed error
    names the size first."""
    for shape in ((MIN_FLOW_SIDE - 1, MIN_FLOW_SIDE - 1), (12, 40), (8, 100),
                  (100, MIN_FLOW_SIDE - 1)):
        small = np.zeros(shape, np.uint8)
        with pytest.raises(OptionError, match=rf"^frames of {shape[1]}x{shape[0]} are too "
                                              rf"small for optical flow; both sides must be at "
                                              rf"least {MIN_FLOW_SIDE} pixels$"):
            DisFlow().pair(small, small)
    for shape in ((MIN_FLOW_SIDE, MIN_FLOW_SIDE), (MIN_FLOW_SIDE, 1000), (1000, MIN_FLOW_SIDE)):
        image = np.zeros(shape, np.uint8)
        assert DisFlow().pair(image, image)[0].shape == (*shape, 2)


# --- warp -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_warp_along_zero_flow_is_the_identity(pair, dtype):
    image = pair[1] if dtype is np.float32 else to_gray8(pair[1])
    np.testing.assert_array_equal(warp(image, _constant_flow(0, 0)), image)


def test_warp_along_the_known_shift_maps_the_reference_onto_the_current_frame(pair):
    cur, ref = pair
    (dx, dy) = SHIFT
    warped = warp(ref, _constant_flow(dx, dy))
    assert warped.shape == ref.shape and warped.dtype == np.float32
    # Wherever x + SHIFT lies inside r, the warp reproduces t exactly (integer shift).
    np.testing.assert_array_equal(warped[-dy:, :W - dx], cur[-dy:, :W - dx])
    # Outside, the border is replicated: the last column and the first row of r.
    np.testing.assert_array_equal(warped[-dy:, W - dx:], np.repeat(
        ref[:H + dy, -1:], dx, axis=1))
    np.testing.assert_array_equal(warped[:-dy, 2:W - dx], np.repeat(ref[:1, 5:], -dy, axis=0))


def test_warp_along_a_half_pixel_flow_averages_the_neighbours():
    image = np.zeros((4, 6), np.float32)
    image[:, 3] = 1.0
    warped = warp(image, _constant_flow(0.5, 0, 4, 6))
    np.testing.assert_allclose(warped[1], [0, 0, 0.5, 0.5, 0, 0], atol=1 / 32)


def test_warp_along_dis_flow_maps_the_reference_onto_the_current_frame(pair, dis_flows):
    cur, ref = pair
    warped = warp(ref, dis_flows[0])
    error = np.abs(_interior(warped) - _interior(cur))
    assert error.mean() < 0.005 and error.max() < 0.05, (error.mean(), error.max())
    assert np.abs(_interior(ref) - _interior(cur)).mean() > 5 * error.mean()  # it did move


# --- occlusion_mask ---------------------------------------------------------------------------


def test_a_consistent_shift_is_valid_except_the_strip_it_uncovers():
    dx, dy = -4, 2  # t(x) = r(x + (-4, 2)): r lacks the 4 left columns and 2 bottom rows of t
    valid = occlusion_mask(_constant_flow(dx, dy), _constant_flow(-dx, -dy))
    assert valid.shape == (H, W) and valid.dtype == bool
    assert not valid[:, :4].any() and not valid[-2:].any()
    assert valid[:-2, 4:].all()


def test_a_correspondence_on_the_last_pixel_is_still_inside():
    valid = occlusion_mask(_constant_flow(1, 0, 8, 10), _constant_flow(-1, 0, 8, 10))
    assert valid[:, :-1].all() and not valid[:, -1].any()


def test_dis_flow_of_a_shift_is_valid_in_the_interior_and_not_in_the_uncovered_strip(dis_flows):
    forward, backward = dis_flows
    valid = occlusion_mask(forward, backward)
    dx, dy = SHIFT  # t's last dx columns and first -dy rows are not in r
    assert _interior(valid).all()
    assert valid[:, -dx:].mean() < 0.05 and valid[:-dy].mean() < 0.05
    assert valid.mean() > 0.85


@pytest.mark.parametrize("u, ok", [(0.7, True), (0.72, False)])
def test_forward_backward_threshold(u: float, ok: bool):
    # Backward flow zero where forward points: |f|^2 <= 0.01 |f|^2 + 0.5 holds up to |f| ~ 0.7107.
    valid = occlusion_mask(_constant_flow(u, 0, 6, 8), _constant_flow(0, 0, 6, 8))
    assert valid[:, :-1].all() == ok and valid[:, :-1].any() == ok
    assert not valid[:, -1].any()  # x + 0.7 passes the last column


def test_motion_boundary_threshold_follows_the_flow_magnitude():
    # u = 0.05 x: |grad u|^2 = 0.0025 against 0.01 u^2 + 0.002, which it exceeds while
    # u < 0.2236, i.e. in columns 0..4; the last column has no forward difference but lands
    # outside the frame; backward 0 stays consistent while u <= 0.71 (all columns).
    forward = np.zeros((4, 16, 2), np.float32)
    forward[..., 0] = 0.05 * np.arange(16, dtype=np.float32)
    valid = occlusion_mask(forward, np.zeros_like(forward))
    expected = np.zeros(16, bool)
    expected[5:15] = True
    np.testing.assert_array_equal(valid, np.broadcast_to(expected, (4, 16)))


def test_a_jump_in_the_flow_is_a_motion_boundary():
    forward = np.zeros((8, 16, 2), np.float32)
    forward[:, 8:, 1] = 0.3  # consistent with zero backward flow, but it jumps at column 7
    valid = occlusion_mask(forward, np.zeros_like(forward))
    assert not valid[:, 7].any()  # forward difference across the jump
    assert valid[:, :7].all() and valid[:-1, 8:].all()
    assert not valid[-1, 8:].any()  # y + 0.3 passes the last row


def test_without_the_boundary_test_a_consistent_jump_is_valid():
    """What --steady's flow_across_edges asks for: only the forward-backward test and the
    frame's edge decide."""
    forward = np.zeros((8, 16, 2), np.float32)
    forward[:, 8:, 1] = 0.3
    valid = occlusion_mask(forward, np.zeros_like(forward), boundaries=False)
    assert valid[:, 7].all() and valid[:-1].all()
    assert not valid[-1, 8:].any()  # still outside the frame
    backward = np.zeros_like(forward)
    backward[:, 8:, 1] = 0.9  # now inconsistent there: |0.3 + 0.9|^2 > 0.01 (...) + 0.5
    assert not occlusion_mask(forward, backward, boundaries=False)[:-1, 8:].any()


def test_occlusion_mask_refuses_flows_that_are_not_h_w_2():
    with pytest.raises(ValueError, match=r"flows must both be \(H, W, 2\), got \(8, 8, 3\)"):
        occlusion_mask(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="flows must both be"):
        occlusion_mask(np.zeros((8, 8, 2)), np.zeros((8, 9, 2)))
