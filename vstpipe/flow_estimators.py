"""Optical-flow estimators by name, for the consistency metric (evaluate.py).

A render's flicker reduction (--flow-blend, --steady) carries its output along DIS flow, so a
metric measured with DIS grades the method with its own ruler: where DIS is wrong in the same
way for the render and for the metric, the error cancels. The metric therefore takes its flow
by name, and defaults to one that no render option uses:

* ``dis``: OpenCV's DIS, medium preset (flow.DisFlow), what the render uses; a few ms per
  flow at 320x136.
* ``tvl1``: TV-L1 (Zach et al. 2007, in the dual form of Wedel et al. 2009), OpenCV contrib's
  ``optflow`` module; the default. Its pyramid halves the size per level (scaleStep 0.5, 5
  levels, so the coarsest is 1/16) where OpenCV's default of 0.8 stops at 0.41: with it a
  known 20 px pan of a real frame at 320x136 was followed to a median error of 0.001 px;
  without it the mean error was 6 px and half the pixels failed the occlusion test.
  Otherwise OpenCV's defaults. On bikes.mp4 at 320x136 (a shared
  2-core CPU) a median 0.45 s per flow between neighbouring frames, 1 s (up to 5 s) across
  10 frames: accurate, not fast.
* ``deepflow``: DeepFlow (Weinzaepfel et al. 2013) as OpenCV contrib ships it, the
  variational part without DeepMatching; 2.5-5x faster than tvl1. Its two flows agree even
  where both are wrong: across bikes.mp4's scene cuts 80-98% of the pixels passed the
  occlusion test (at most 11% under dis, 2% under tvl1), so cuts are not skipped under it, and
  motions beyond its coarsest level (4 px on 96x64 frames) come back consistently wrong.
  Use it on cut-free clips with moderate motion.
* ``farneback``: Farneback's polynomial expansion (2003), OpenCV's main module; fast, but
  1 px off on a known 2 px pan of a real frame, and 28% of the pixels passed at one cut.
* ``sparsetodense``: OpenCV contrib's ``calcOpticalFlowSparseToDense``: pyramidal Lucas-Kanade
  matches on a grid (every 4th pixel), kept where they are confident, then densified by
  robust locally-weighted affine fits (the interpolation idea of EpicFlow, Revaud et al. 2015).
  No dense data term and no variational smoothing, so it shares neither DIS's dense patch
  search nor its variational refinement. Follows large motion: a known 24 px shift of a bikes
  frame at 320x136 to 0.02 px (median), where deepflow was off by 22 px; about 0.1-0.2 s per
  flow there. Like deepflow, its two flows agree across a cut (the interpolation is smooth
  wherever it has no match), so cuts are found from the source's colours.

Every estimator has DisFlow's interface: ``pair(current, reference) -> (forward, backward)``
on (H, W) uint8 grey frames, with flow.py's conventions (forward on current's grid, pointing
into reference). They all follow OpenCV's ``calc(I0, I1)``, which gives the flow f on I0's
grid with I0(x) ~ I1(x + f(x)), so forward is ``calc(current, reference)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from .errors import OptionError
from .flow import DisFlow, check_flow_size

if TYPE_CHECKING:
    from types import ModuleType

DEFAULT_FLOW = "tvl1"
_INSTALL = "pip install opencv-contrib-python-headless"


class FlowEstimator(Protocol):
    def pair(self, current: np.ndarray, reference: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """(forward, backward): current -> reference on current's grid, and the reverse."""
        ...


class _OpenCVFlow:
    """An OpenCV DenseOpticalFlow run in both directions; subclasses say how to make it."""

    contrib: ClassVar[bool] = False  # needs cv2.optflow (opencv-contrib-python-headless)

    def __init__(self) -> None:
        import cv2  # create() checked that it is there

        self._flow = self._create(cv2)

    @staticmethod
    def _create(cv2: ModuleType) -> Any:
        raise NotImplementedError

    def pair(self, current: np.ndarray, reference: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """(forward, backward): current -> reference on current's grid, and the reverse."""
        check_flow_size(current)
        return (self._flow.calc(current, reference, None),
                self._flow.calc(reference, current, None))


class TvL1Flow(_OpenCVFlow):
    """Dual TV-L1: 5 levels halving the size (see the module docstring), 5 warps per level,
    OpenCV's defaults otherwise (lambda 0.15, epsilon 0.01)."""

    contrib = True

    @staticmethod
    def _create(cv2: ModuleType) -> Any:
        return cv2.optflow.DualTVL1OpticalFlow_create(nscales=5, warps=5, scaleStep=0.5)


class DeepFlow(_OpenCVFlow):
    """DeepFlow at OpenCV's defaults (which its Python binding cannot change)."""

    contrib = True

    @staticmethod
    def _create(cv2: ModuleType) -> Any:
        return cv2.optflow.createOptFlow_DeepFlow()


class FarnebackFlow(_OpenCVFlow):
    """Farneback at OpenCV's defaults (5 levels, 13x13 window, 10 iterations)."""

    @staticmethod
    def _create(cv2: ModuleType) -> Any:
        return cv2.FarnebackOpticalFlow_create()


class SparseToDenseFlow:
    """OpenCV contrib's sparse-to-dense interpolation, a match every 4th pixel (its default of 8
    left 0.2 px of error on a 2 px shift of a 96x64 texture; 4 leaves 0.007), its defaults
    otherwise (k 128 neighbours, fast global smoothing after)."""

    contrib = True

    def pair(self, current: np.ndarray, reference: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        check_flow_size(current)
        calc = cv2.optflow.calcOpticalFlowSparseToDense
        # Its robust local fits sample at random from OpenCV's generator, seeded before each
        # flow (repeated flows in one process agree; OpenCV's worker threads may still vary).
        cv2.setRNGSeed(0)
        forward = calc(current, reference, grid_step=4)
        cv2.setRNGSeed(0)
        return forward, calc(reference, current, grid_step=4)


ESTIMATORS: dict[str, type[FlowEstimator]] = {
    "dis": DisFlow,
    "tvl1": TvL1Flow,
    "deepflow": DeepFlow,
    "farneback": FarnebackFlow,
    "sparsetodense": SparseToDenseFlow,
}
_NAMES = ", ".join(ESTIMATORS)


def check_flow_name(name: object) -> str:
    """``name`` if it is an estimator's, else an OptionError naming ``flow`` and the names."""
    if not isinstance(name, str) or name not in ESTIMATORS:
        raise OptionError.about("{flow} {value}: unknown flow estimator; use one of {names}",
                                value=repr(name), names=_NAMES)
    return name


def create(name: str) -> FlowEstimator:
    """The estimator called ``name``; OptionError when it is unknown or its OpenCV module is
    missing, saying how to install it."""
    cls = ESTIMATORS[check_flow_name(name)]
    try:
        import cv2
    except ImportError:
        raise OptionError.about("{flow} {value} needs OpenCV, which is not installed; run: "
                                "{install}", value=name, install=_INSTALL) from None
    if getattr(cls, "contrib", False) and not hasattr(cv2, "optflow"):
        plain = " or ".join(n for n, c in ESTIMATORS.items() if not getattr(c, "contrib", False))
        raise OptionError.about(
            "{flow} {value} needs OpenCV's contrib modules (cv2.optflow), which the installed "
            "OpenCV lacks; run: pip uninstall -y opencv-python-headless && {install}, or use "
            "{flow} {plain}", value=name, install=_INSTALL, plain=plain)
    return cls()
