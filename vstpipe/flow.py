"""Optical flow on source frames: DIS flow, the occlusion test, and warping along a flow.

DIS is what flow-guided blending in render uses (temporal/flow_blend.py); the consistency
metric (evaluate.py) takes DIS or an independent estimator by name (flow_estimators.py), and
the occlusion test and the warp from here. Conventions: a flow is (H, W, 2) float32 (dx, dy) in pixels.
``forward`` lives on the grid of frame t and points into a reference frame r, so pixel x of t
shows what r shows at x + forward(x); it is the flow that warps r onto t:
warp(r)(x) = r(x + forward(x)).

The occlusion test is the one of Sundaram et al. 2010 / Ruder et al. 2016 that Lai et al.
(ECCV 2018) use, with squared magnitudes |.|^2 = u^2 + v^2 and b_w(x) = b(x + f(x)):
forward-backward consistent |f + b_w|^2 <= 0.01 (|f|^2 + |b_w|^2) + 0.5, not on a motion
boundary |grad u|^2 + |grad v|^2 <= 0.01 |f|^2 + 0.002 (forward differences, 0 on the last
row/column, as in Lai et al.'s code), and x + f(x) inside frame r.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from .errors import OptionError

if TYPE_CHECKING:
    from types import ModuleType

_FB_SCALE, _FB_OFFSET = 0.01, 0.5
_MB_SCALE, _MB_OFFSET = 0.01, 0.002

# DIS (OpenCV 4.x/5.x, medium preset) refuses 11x11 and crashes the process (SIGSEGV) on short,
# wide images such as 12x40 or 8x100; both sides of at least 16 worked at every size tried.
MIN_FLOW_SIDE = 16


def cv2_module() -> ModuleType:
    """OpenCV, or an OptionError saying how to install it."""
    try:
        import cv2
    except ImportError:
        raise OptionError("optical flow needs OpenCV, which is not installed; "
                          "run: pip install opencv-python-headless") from None
    return cv2


@functools.lru_cache(maxsize=4)
def pixel_grid(height: int, width: int) -> np.ndarray:
    """(H, W, 2) float32 pixel coordinates (x, y), the identity map for cv2.remap."""
    ys, xs = np.indices((height, width), dtype=np.float32)
    grid = np.stack((xs, ys), axis=-1)
    grid.flags.writeable = False  # shared between calls through the cache
    return grid


def to_gray8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] -> (H, W) uint8 luma, what DIS works on."""
    cv2 = cv2_module()
    return cv2.convertScaleAbs(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), alpha=255.0)


def check_flow_size(image: np.ndarray) -> None:
    """OptionError unless both sides of ``image`` (H, W, ...) are at least MIN_FLOW_SIDE."""
    if min(image.shape[:2]) < MIN_FLOW_SIDE:
        h, w = image.shape[:2]
        raise OptionError(f"frames of {w}x{h} are too small for optical flow; both sides "
                          f"must be at least {MIN_FLOW_SIDE} pixels")


class DisFlow:
    """OpenCV's DIS optical flow (medium preset) in both directions between two grey frames."""

    def __init__(self) -> None:
        cv2 = cv2_module()
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def pair(self, current: np.ndarray, reference: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """(forward, backward): current -> reference on current's grid, and the reverse."""
        check_flow_size(current)
        return (self._dis.calc(current, reference, None),
                self._dis.calc(reference, current, None))


def warp(image: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """``image`` of frame r warped onto frame t along ``forward`` (bilinear, border replicated)."""
    cv2 = cv2_module()
    coords = pixel_grid(*forward.shape[:2]) + forward
    return cv2.remap(image, coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def occlusion_mask(forward: np.ndarray, backward: np.ndarray, boundaries: bool = True
                   ) -> np.ndarray:
    """Boolean (H, W) mask of the pixels whose correspondence the flow explains: True = valid.

    ``forward``: (H, W, 2) flow on the grid of frame t into the reference frame r;
    ``backward``: the reverse flow, on the grid of r into t. A pixel is valid when its
    correspondence lands inside r, the two flows agree there, and (unless ``boundaries`` is
    False) it is not on a motion boundary of ``forward`` (thresholds in the module docstring).
    """
    cv2 = cv2_module()
    f = np.ascontiguousarray(forward, dtype=np.float32)
    b = np.ascontiguousarray(backward, dtype=np.float32)
    if f.ndim != 3 or f.shape[2] != 2 or f.shape != b.shape:
        raise ValueError(f"flows must both be (H, W, 2), got {f.shape} and {b.shape}")
    height, width = f.shape[:2]
    coords = pixel_grid(height, width) + f
    # Border replicate only keeps remap from inventing zeros; those pixels fail `inside`.
    b_w = cv2.remap(b, coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    fu, fv = cv2.split(f)  # contiguous planes: faster arithmetic than strided views
    bu, bv = cv2.split(b_w)
    f_mag = fu * fu + fv * fv
    su, sv = fu + bu, fv + bv
    consistent = su * su + sv * sv <= _FB_SCALE * (f_mag + bu * bu + bv * bv) + _FB_OFFSET
    x, y = cv2.split(coords)
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    if not boundaries:
        return consistent & inside
    grad = np.zeros((height, width), np.float32)
    for plane in (fu, fv):
        du = plane[:, :-1] - plane[:, 1:]
        grad[:, :-1] += du * du
        dv = plane[:-1] - plane[1:]
        grad[:-1] += dv * dv
    smooth = grad <= _MB_SCALE * f_mag + _MB_OFFSET
    return consistent & smooth & inside
