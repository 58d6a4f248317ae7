"""Module tests for flow_estimators.py: the registry, each estimator on a known shift and a still
picture, the size check, and the errors for an unknown name or a missing OpenCV module."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from mediatools import smooth_texture

from vstpipe.errors import OptionError
from vstpipe.flow import MIN_FLOW_SIDE, to_gray8
from vstpipe.flow_estimators import DEFAULT_FLOW, ESTIMATORS, check_flow_name, create
from vstpipe.temporal import flow_blend

cv2 = pytest.importorskip("cv2")

H, W = 64, 96
SHIFT = (2, 1)  # (dx, dy): frame t shows at x what frame r shows at x + SHIFT
MARGIN = 12  # interior: away from the strip the shift uncovers and from the border
NAMES = list(ESTIMATORS)


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """(current t, reference r) grey frames cut from one canvas: t(x) = r(x + SHIFT) exactly."""
    (dx, dy), pad = SHIFT, 8
    canvas = to_gray8(smooth_texture(H + 2 * pad, W + 2 * pad, blur=3.0))
    ref = canvas[pad:pad + H, pad:pad + W]
    cur = canvas[pad + dy:pad + dy + H, pad + dx:pad + dx + W]
    return np.ascontiguousarray(cur), np.ascontiguousarray(ref)


def test_the_registry_has_the_renders_flow_and_independent_ones():
    assert {"dis", "tvl1", "deepflow", "farneback"} <= set(ESTIMATORS)
    # The render's temporal code uses DIS; the metric's default must be another estimator.
    assert ESTIMATORS["dis"] is flow_blend.DisFlow
    assert DEFAULT_FLOW in ESTIMATORS and ESTIMATORS[DEFAULT_FLOW] is not flow_blend.DisFlow


@pytest.mark.parametrize("name", NAMES)
def test_each_estimator_recovers_a_known_shift_in_both_directions(pair, name: str):
    forward, backward = create(name).pair(*pair)
    assert forward.shape == backward.shape == (H, W, 2) and forward.dtype == np.float32
    for flow, expected in ((forward, SHIFT), (backward, (-SHIFT[0], -SHIFT[1]))):
        inner = flow[MARGIN:-MARGIN, MARGIN:-MARGIN]
        error = np.linalg.norm(inner - np.float32(expected), axis=-1)
        assert error.mean() < 0.05 and error.max() < 0.25, (expected, error.mean(), error.max())


@pytest.mark.parametrize("name", NAMES)
def test_each_estimator_sees_no_motion_in_a_still_picture(pair, name: str):
    for flow in create(name).pair(pair[1], pair[1]):
        # Farneback leaves up to 0.07 px near the border of an unchanged picture.
        assert np.abs(flow).mean() < 0.01 and np.abs(flow).max() < 0.1, name


@pytest.mark.parametrize("name", NAMES)
def test_each_estimator_refuses_frames_below_the_minimum_side(name: str):
    small = np.zeros((MIN_FLOW_SIDE - 1, 40), np.uint8)
    with pytest.raises(OptionError, match=rf"^frames of 40x{MIN_FLOW_SIDE - 1} are too small"):
        create(name).pair(small, small)


def test_an_unknown_name_is_one_line_naming_the_setting_and_the_names():
    for bad in ("raft", "", None, 3):
        with pytest.raises(OptionError) as info:
            check_flow_name(bad)
        assert info.value.named(lambda s: "--" + s) == (
            f"--flow {bad!r}: unknown flow estimator; use one of dis, tvl1, deepflow, farneback, "
            "sparsetodense")
    with pytest.raises(OptionError, match="unknown flow estimator"):
        create("raft")


@pytest.mark.parametrize("name", ["tvl1", "deepflow"])
def test_without_the_contrib_modules_the_error_says_how_to_install_them(
        monkeypatch: pytest.MonkeyPatch, name: str):
    monkeypatch.delattr(cv2, "optflow")  # what plain opencv-python-headless looks like
    with pytest.raises(OptionError) as info:
        create(name)
    message = info.value.named(lambda s: "--" + s)
    assert "\n" not in message
    assert message.startswith(f"--flow {name} needs OpenCV's contrib modules (cv2.optflow)")
    assert ("pip uninstall -y opencv-python-headless && pip install "
            "opencv-contrib-python-headless, or use --flow dis or farneback") in message
    for plain in ("dis", "farneback"):  # the main module's estimators still work
        assert create(plain).pair(np.zeros((16, 16), np.uint8),
                                  np.zeros((16, 16), np.uint8))[0].shape == (16, 16, 2)


def test_without_opencv_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    for name in NAMES:
        with pytest.raises(OptionError, match=rf"^flow {name} needs OpenCV, which is not "
                                              rf"installed; run: pip install "
                                              rf"opencv-contrib-python-headless$"):
            create(name)


@pytest.mark.parametrize("name", ["tvl1", "sparsetodense"])
def test_the_accurate_estimators_follow_a_large_pan(name: str):
    """A 24 px pan at the evaluation's size (320 wide): what bikes.mp4's fast shots hold.
    (deepflow, as OpenCV ships it, does not: its coarsest level sees at most a few pixels.)"""
    (dx, dy), pad, h, w = (24, 8), 32, 136, 320
    # structure at every scale, as real frames have: fine noise alone vanishes from the
    # coarse levels that a large motion is found on
    canvas = to_gray8(sum(smooth_texture(h + 2 * pad, w + 2 * pad, seed=s, blur=b)
                          for s, b in enumerate((3.0, 10.0))) / 2)
    ref = np.ascontiguousarray(canvas[pad:pad + h, pad:pad + w])
    cur = np.ascontiguousarray(canvas[pad + dy:pad + dy + h, pad + dx:pad + dx + w])
    forward, _ = create(name).pair(cur, ref)
    inner = forward[2 * pad:-2 * pad, 2 * pad:-2 * pad]
    error = np.linalg.norm(inner - np.float32((dx, dy)), axis=-1)
    assert np.median(error) < 0.1 and (error < 1).mean() > 0.95, (np.median(error),
                                                                  (error < 1).mean())
