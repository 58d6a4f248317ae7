"""Temporal-consistency metric: the warping error of Lai et al. (ECCV 2018), streamed.

"Learning Blind Video Temporal Consistency" measures flicker as the difference between
each output frame and the previous output frame warped onto it along the optical flow of
the *source* video, ignoring pixels the flow cannot explain (occlusions, motion
boundaries). Because even a perfect result inherits the flow's own mistakes and the
source's lighting changes, the same error is also measured on the source frames with the
same masks; that is the floor, and stylized / source is the figure worth comparing.

Definitions (for one pair of frames: the reference r = t-1, or t-long_gap, and t):

* Flow on the source frames, by the estimator ``EvalOptions.flow`` names (TV-L1 unless
  told otherwise; flow_estimators.py) on 8-bit grey, both directions, and the valid pixels M
  from the occlusion test of Lai et al. on those two flows: see flow.py for the conventions
  and thresholds.
* E(t) = sum_x M(x) * mean_c (O_t(x, c) - warp(O_r)(x, c))^2 / sum_x M(x), RGB in [0, 1];
  the reported error is the mean of E(t) over the pairs.

Choices where the paper, its code and this module differ, and why:

* Channels are averaged, not summed. The paper's eq. (9) prints a squared L2 norm over
  RGB, but the released ``evaluate_WarpError.py`` reads the mask as a 3-channel image, so
  it divides the channel sum by 3 * sum(M); its published numbers are this mean. Values
  here are on that scale (the paper's formula read literally would be 3x larger); the
  ratios do not depend on it.
* A correspondence that leaves the frame is invalid. Lai et al.'s resampler clamps at
  the border, which scores content that only just entered the picture as flicker.
* Scene cuts are skipped, and counted in the report. Lai et al. evaluate cut-free clips; on
  edited footage the flow across a cut finds a few spurious "consistent" pixels (flat areas
  where both flows agree on nonsense) whose error is 100-1000x a normal pair's, and a handful
  of cuts then decide the mean (bikes.mp4, 5 cuts in 250 frames: 0.0024 with them, 0.00018
  without). Two tests, either enough: the source frames' colour histograms differ by more
  than ``cut_threshold`` (temporal/cuts.py's distance, at the render's default of 0.2; a
  long-term pair is skipped when such a cut lies between its frames), or fewer than
  ``min_valid`` (25%) of the pixels are valid. The first is a property of the source, the
  same under every estimator; it is needed because DeepFlow's mask does not see cuts at all
  (flow_estimators.py): with the mask alone, bikes.mp4's 5 cuts in 249 pairs made up most of
  DeepFlow's mean, and per-frame and --steady renders, both fresh after a cut, scored alike.
  Across cuts at most ~20% of pixels passed the mask under DIS and 2% under TV-L1; between
  ordinary frames at least 75% (50% at a gap of 10 frames).
* Flow is one of OpenCV's estimators rather than FlowNet2 (no network to ship), so absolute
  values are not comparable with the paper's tables; ratios against the source floor,
  measured with the same flow, are. Values differ between estimators, so compare runs
  measured with the same one.
* The default flow is not the render's. --flow-blend and --steady carry the output along
  DIS flow; measured with DIS, the metric forgives exactly the mistakes the method makes
  (on bikes.mp4 --steady cut the ratio by 36% under DIS and by 2% under Farneback). The
  default, TV-L1, shares nothing with DIS. Of the two independent estimators it is the
  slower (a median 0.45 s per flow at 320x136 against DeepFlow's 0.18 s) but the one whose
  mask can be trusted: on bikes.mp4, DeepFlow's two flows agree across scene cuts (80-98%
  of the pixels pass; at most 2% under TV-L1, 11% under DIS) and on synthetic pans beyond
  a few pixels it is consistently wrong, while TV-L1 followed known pans of up to 20 px on
  a real frame. On the pixels that all three kept (bikes.mp4 frames 0-59 at 320x136), the
  source's own warping error was lowest under TV-L1: 6.7e-5 against 7.7e-5 (DeepFlow) and
  8.0e-5 (DIS) between neighbours, 1.7e-4 against 4.7e-4 and 4.1e-4 across 10 frames.
  ``flow="dis"`` stays, a few ms per flow, for quick looks.
* The long-term error is the same measure between frames ``long_gap`` apart (flow
  computed directly between them, not chained); it shows slow drift that the
  short-term error cannot.

Everything is compared at the stylized video's size (its longer side capped at
``max_side``): flow costs grow with the pixel count, and the stylized frames carry no
detail finer than the network's processing size anyway. The source is resized to that
size (INTER_AREA; bilinear in the rare case that enlarges it), so source and output may
differ in size. Values depend a little on that size, so compare runs evaluated with the
same ``max_side``.

Several renders of one source are measured in one pass (evaluate_many): the flows and masks
of each pair of source frames are computed once and every render is scored against them, so
their figures are those of separate runs at a fraction of the cost. They must share one
evaluation size.

Memory is bounded: only the last ``long_gap`` frames of each video (at the evaluation size)
are kept.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from . import ops
from .errors import MediaError, OptionError
from .eval_report import Trace
from .flow import MIN_FLOW_SIDE, cv2_module, occlusion_mask, to_gray8, warp
from .flow_estimators import DEFAULT_FLOW, check_flow_name, create
from .images import load_style
from .media import Frame, Source, open_source
from .model import StyleNet
from .spec import check_size
from .temporal.cuts import colour_histograms


@dataclass(frozen=True)
class EvalOptions:
    """How the metric is computed (checked by check_eval_options)."""

    long_gap: int = 10  # frames between the two frames of the long-term error (>= 2)
    style_every: int = 10  # style distance on every Nth stylized frame (0, N, 2N, ...)
    # Optical flow on the source (flow_estimators.ESTIMATORS); the default is one no render
    # option uses, so a method is not graded with its own flow.
    flow: str = DEFAULT_FLOW
    # Longer side of the evaluation size: a larger stylized video is scaled down to it
    # (never up) because flow time grows with the pixel count. None: its own size.
    max_side: int | None = 480
    # Shorter side the style image is scaled to before its statistics are taken; feature
    # statistics depend on scale, so use the --style-size the video was rendered with.
    style_size: int = 512
    # A pair with a smaller fraction of valid pixels is a scene cut (or a flow failure)
    # and is skipped; see the module docstring for where 0.25 comes from.
    min_valid: float = 0.25
    # A pair whose source frames' colour histograms differ by more is a scene cut, skipped
    # under every estimator (temporal/cuts.py's distance; 0.2 is the render's default).
    cut_threshold: float = 0.2


def check_eval_options(options: EvalOptions) -> None:
    """OptionError naming the bad value; a plain function so building options never raises."""
    for name, value, low in (("long_gap", options.long_gap, 2),
                             ("style_every", options.style_every, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise OptionError(f"{name} must be an integer of at least {low}, got {value!r}")
    check_size("style_size", options.style_size)  # the same rules as a render's
    if options.max_side is not None:
        check_size("max_side", options.max_side)
    valid = options.min_valid
    if isinstance(valid, bool) or not isinstance(valid, int | float) or not 0 <= valid < 1:
        raise OptionError(f"min_valid must be a fraction from 0 to below 1, got {valid!r}")
    cut = options.cut_threshold
    if isinstance(cut, bool) or not isinstance(cut, int | float) or not 0 < cut <= 1:
        raise OptionError(f"cut_threshold must be a fraction above 0 and at most 1, "
                          f"got {cut!r}")
    check_flow_name(options.flow)


@dataclass(frozen=True)
class WarpErrors:
    """What ``warp_errors`` measured; NaN where there was no pair to measure."""

    short: float  # stylized, t-1 -> t
    short_source: float  # source, same flows and masks: the floor
    long: float  # stylized, t-long_gap -> t
    long_source: float
    frames: int
    short_pairs: int  # pairs averaged
    long_pairs: int
    short_skipped: int  # pairs skipped for having too few valid pixels (scene cuts)
    long_skipped: int


@dataclass(frozen=True)
class EvalReport:
    """The metric for one stylized video against its source, under the flow ``flow`` names.

    Ratios are stylized / source: 1.0 means no flicker beyond what the flow cannot explain
    in the source itself. A ratio is NaN when either error is (no pairs: too few frames for
    the long gap, or every pair skipped), 1.0 when both are 0 and inf when only the
    source's is. ``skipped_pairs`` / ``long_skipped_pairs`` count the pairs left out as
    scene cuts (EvalOptions.min_valid).
    """

    warp_error: float
    warp_error_source: float
    ratio: float
    long_term: float
    long_term_source: float
    long_term_ratio: float
    frames: int
    flow: str  # the estimator (flow_estimators.ESTIMATORS) the flows and masks came from
    style_distance: float | None = None
    skipped_pairs: int = 0
    long_skipped_pairs: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain dict for json.dumps; NaN and inf, which JSON cannot hold, become None."""
        out: dict[str, Any] = {
            "warp_error": _finite(self.warp_error),
            "warp_error_source": _finite(self.warp_error_source),
            "ratio": _finite(self.ratio),
            "long_term": _finite(self.long_term),
            "long_term_source": _finite(self.long_term_source),
            "long_term_ratio": _finite(self.long_term_ratio),
            "frames": self.frames,
            "flow": self.flow,
            "skipped_pairs": self.skipped_pairs,
            "long_skipped_pairs": self.long_skipped_pairs,
        }
        if self.style_distance is not None:
            out["style_distance"] = _finite(self.style_distance)
        return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _ratio(stylized: float, source: float) -> float:
    if math.isnan(stylized) or math.isnan(source):
        return math.nan
    if source == 0.0:
        return 1.0 if stylized == 0.0 else math.inf
    return stylized / source


class _FrameError(ValueError):
    """Frames the metric cannot use (wrong shape, too small, changing size).

    ``render``: the index of the stylized video they came from, None for the source.
    """

    def __init__(self, message: str, render: int | None = None) -> None:
        super().__init__(message)
        self.render = render


class _SizeError(_FrameError):
    """Renders compared in one pass whose evaluation sizes differ."""

    def __init__(self, render: int, size: tuple[int, int], first: tuple[int, int],
                 longest: int) -> None:
        super().__init__(f"evaluated at {size[0]}x{size[1]}, the first render at "
                         f"{first[0]}x{first[1]}", render)
        self.size, self.first, self.longest = size, first, longest


class _FrameCountError(ValueError):
    """Videos of different lengths; ``counts``: the source's, then each render's."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = counts
        self.render = next(i for i, n in enumerate(counts[1:]) if n != counts[0])
        super().__init__(f"source has {counts[0]} frames but stylized has "
                         f"{counts[1 + self.render]}")


class _Prepared(NamedTuple):
    """One frame of the source and of every render, at the evaluation size."""

    gray: np.ndarray  # (H, W) uint8 source luma, what the flow works on
    source: np.ndarray  # (H, W, 3) float32 RGB in [0, 1]
    stylized: tuple[np.ndarray, ...]  # per render, (H, W, 3) float32 RGB in [0, 1]
    histogram: torch.Tensor  # the source's colour histograms (temporal/cuts.py)
    shot: int  # scene cuts before this frame: pairs of one shot have equal counts


def _eval_size(shape: tuple[int, ...], max_side: int | None) -> tuple[int, int]:
    """(W, H) of the evaluation: the stylized size, longer side capped at ``max_side``."""
    height, width = shape[:2]
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_float(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 / uint16 / float in [0, 1] -> float32 [0, 1] of ``size`` (W, H)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise _FrameError(f"frames must be (H, W, 3) RGB, got shape {rgb.shape}")
    height, width = rgb.shape[:2]
    if (width, height) != size:
        cv2 = cv2_module()
        # INTER_AREA averages without aliasing when shrinking, the usual case (the network
        # ran at most at the source size); enlarging with it repeats pixels in blocks whose
        # edges no flow can warp, which would inflate the source's floor, so enlarge
        # bilinearly. Resized before the float conversion: fewer pixels to convert.
        shrink = size[0] <= width and size[1] <= height
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) * np.float32(1 / 255)
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) * np.float32(1 / 65535)
    return rgb.astype(np.float32, copy=False)


class _Mean:
    """Running mean over pairs of the (stylized, source) errors."""

    def __init__(self) -> None:
        self.stylized = 0.0
        self.source = 0.0
        self.pairs = 0
        self.skipped = 0

    def add(self, errors: tuple[float, float] | None) -> None:
        if errors is None:
            self.skipped += 1
            return
        self.stylized += errors[0]
        self.source += errors[1]
        self.pairs += 1

    def values(self) -> tuple[float, float]:
        if not self.pairs:
            return math.nan, math.nan
        return self.stylized / self.pairs, self.source / self.pairs


class _WarpMeter:
    """Feed the frames of the source and of ``renders`` stylized videos in order; computes
    each pair's flows and mask once for all of them, and keeps only the ``long_gap`` frames
    still needed."""

    def __init__(self, options: EvalOptions, renders: int = 1, trace: Trace | None = None
                 ) -> None:
        self._trace = trace  # fed every short-term pair when given (the --report page)
        self._max_side = options.max_side
        self._min_valid = options.min_valid
        self._cut_threshold = options.cut_threshold
        # The oldest entry is t - long_gap once full, the newest t - 1.
        self._ring: deque[_Prepared] = deque(maxlen=options.long_gap)
        self._flow = create(options.flow)
        self._shapes: list[tuple[int, ...]] = []
        self._size = (0, 0)
        self._short = [_Mean() for _ in range(renders)]
        self._long = [_Mean() for _ in range(renders)]
        self.frames = 0

    def add(self, source: np.ndarray, stylized: Sequence[np.ndarray]) -> None:
        if not self._shapes:
            self._start([frame.shape for frame in stylized])
        for render, (frame, shape) in enumerate(zip(stylized, self._shapes, strict=True)):
            if frame.shape != shape:
                raise _FrameError(f"stylized frame {self.frames} has shape {frame.shape}, "
                                  f"the first had {shape}", render)
        src = _to_float(source, self._size)
        histogram = colour_histograms(torch.from_numpy(src).permute(2, 0, 1)[None])[0]
        ring = self._ring
        shot = 0
        if ring:
            cut = ops.histogram_distance(histogram, ring[-1].histogram) > self._cut_threshold
            shot = ring[-1].shot + cut
        current = _Prepared(to_gray8(src), src, tuple(
            self._stylized(render, frame) for render, frame in enumerate(stylized)),
            histogram, shot)
        if ring:
            _add_all(self._short, self._compare(ring[-1], current, self._trace))
        if len(ring) == ring.maxlen:
            _add_all(self._long, self._compare(ring[0], current))
        ring.append(current)
        self.frames += 1

    def _start(self, shapes: list[tuple[int, ...]]) -> None:
        """The evaluation size, from the first frame of each render: one for all of them."""
        sizes = [_eval_size(shape, self._max_side) for shape in shapes]
        for render, size in enumerate(sizes):
            if size != sizes[0]:
                longest = min(max(shape[:2]) for shape in (shapes[0], shapes[render]))
                raise _SizeError(render, size, sizes[0], longest)
        self._shapes, self._size = shapes, sizes[0]
        if self._trace is not None:
            self._trace.size = self._size
        if min(self._size) < MIN_FLOW_SIDE:
            raise _FrameError(f"frames of {self._size[0]}x{self._size[1]} are too small "
                              f"for optical flow; both sides must be at least "
                              f"{MIN_FLOW_SIDE} pixels", 0)

    def _stylized(self, render: int, frame: np.ndarray) -> np.ndarray:
        try:
            return _to_float(frame, self._size)
        except _FrameError as err:
            raise _FrameError(str(err), render) from None

    def _compare(self, ref: _Prepared, cur: _Prepared, trace: Trace | None = None
                 ) -> list[tuple[float, float]] | None:
        """Per render, (stylized, source) error of warping ``ref`` onto ``cur``; None: a cut.

        The flows, the mask and the source's error are computed once for every render; the
        pair goes to ``trace`` too when given.
        """
        if ref.shot != cur.shot:  # a scene cut between them: nothing for a flow to follow
            if trace is not None:
                trace.skip()
            return None
        forward, backward = self._flow.pair(cur.gray, ref.gray)
        valid = occlusion_mask(forward, backward)
        count = int(np.count_nonzero(valid))
        if count == 0 or count < self._min_valid * valid.size:
            if trace is not None:
                trace.skip()
            return None

        def error(now: np.ndarray, before: np.ndarray) -> float:
            diff = now - warp(before, forward)
            per_pixel = np.einsum("hwc,hwc->hw", diff, diff)  # channel sum; /3 below
            return float(np.sum(per_pixel, where=valid, dtype=np.float64)) / (3 * count)

        floor = error(cur.source, ref.source)
        errors = [(error(now, before), floor)
                  for now, before in zip(cur.stylized, ref.stylized, strict=True)]
        if trace is not None:
            trace.add(errors, cur.stylized, lambda render: warp(ref.stylized[render], forward),
                      valid)
        return errors

    def result(self) -> list[WarpErrors]:
        """One WarpErrors per render, in the order they were given."""
        out = []
        for short_mean, long_mean in zip(self._short, self._long, strict=True):
            short, short_source = short_mean.values()
            long, long_source = long_mean.values()
            out.append(WarpErrors(short, short_source, long, long_source, self.frames,
                                  short_mean.pairs, long_mean.pairs, short_mean.skipped,
                                  long_mean.skipped))
        return out


def _add_all(means: list[_Mean], errors: list[tuple[float, float]] | None) -> None:
    for index, mean in enumerate(means):
        mean.add(None if errors is None else errors[index])


def _zipped(*streams: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, ...]]:
    """zip that, when one stream runs out before the others, counts the rest of each and
    raises _FrameCountError (the source first, then the renders)."""
    iterators = [iter(stream) for stream in streams]
    count = 0
    while True:
        row = [next(it, None) for it in iterators]  # None marks the end: frames are never None
        ended = [frame is None for frame in row]
        if any(ended):
            if all(ended):
                return
            # Draining decodes the rest of the longer videos but keeps none of it.
            raise _FrameCountError([count if frame is None else count + 1 + sum(1 for _ in it)
                                    for frame, it in zip(row, iterators, strict=True)])
        yield tuple(row)
        count += 1


def warp_errors(source: Iterable[np.ndarray], stylized: Iterable[np.ndarray],
                opts: EvalOptions = EvalOptions()) -> WarpErrors:
    """Short- and long-term warping errors of ``stylized`` and of ``source`` (the floor).

    Frames are (H, W, 3) RGB: uint8, uint16 (full scale) or float in [0, 1]; the stylized
    frames all share one shape, the source's may differ from it. Consumed one pair at a
    time. ValueError when the counts differ or there are fewer than 2 frames.
    """
    check_eval_options(opts)
    meter = _WarpMeter(opts)
    for src, sty in _zipped(source, stylized):
        meter.add(src, (sty,))
    if meter.frames < 2:
        raise ValueError(f"the warping error needs at least 2 frames, got {meter.frames}")
    return meter.result()[0]


# ---------------------------------------------------------------------------
# Style distance
# ---------------------------------------------------------------------------


class _StyleMeter:
    """Distance of frames' encoder statistics from a style image's, for ``renders`` videos.

    Per frame: sum over relu1_1..relu4_1 (the encoder's ``taps``; for uvc-lab the last is
    its reduced 1/8 layer) of (||mu_F - mu_S||_2 + ||sigma_F - sigma_S||_2) / sqrt(C_l),
    i.e. the root-mean-square per-channel difference of the means plus that of the
    standard deviations (ops.mean_std), summed over the 4 layers. sqrt(C_l) rather than
    C_l keeps each layer's term a per-channel difference whatever its width. This is the
    style loss AdaIN was trained with (Huang & Belongie 2017) made independent of the
    channel counts; 0 means the frame has exactly the style's statistics. Frames are
    measured at the evaluation size, the style image at ``style_size``.
    """

    def __init__(self, net: StyleNet, styles: Sequence[tuple[torch.Tensor, float]],
                 max_side: int | None, renders: int = 1) -> None:
        self._net = net
        self._device = next(net.parameters()).device
        self._max_side = max_side
        # Once, whatever the number of renders. A blend's target is the weighted mean of its
        # images' statistics, layer by layer: what a render of the blend aims at (eq. 12).
        per_image = [self._stats(image) for image, _ in styles]
        weights = torch.tensor([w for _, w in styles], dtype=torch.float32)
        self._target = [ops.blend_stats(torch.stack([layers[i][0] for layers in per_image]),
                                        torch.stack([layers[i][1] for layers in per_image]),
                                        weights)
                        for i in range(len(per_image[0]))]
        self.total = [0.0] * renders
        self.count = [0] * renders

    @torch.inference_mode()
    def _stats(self, rgb: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        feats = self._net.taps(rgb.to(self._device))
        # Statistics in float32 whatever precision the network runs in.
        return [ops.mean_std(feat.float()) for feat in feats]

    def add(self, frame: np.ndarray, render: int = 0) -> None:
        rgb = _to_float(frame, _eval_size(frame.shape, self._max_side))
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
        distance = 0.0
        for (mean, std), (s_mean, s_std) in zip(self._stats(x), self._target, strict=True):
            norm = math.sqrt(mean.shape[1])
            distance += float((torch.linalg.vector_norm(mean - s_mean)
                               + torch.linalg.vector_norm(std - s_std)) / norm)
        self.total[render] += distance
        self.count[render] += 1

    def value(self, render: int = 0) -> float:
        count = self.count[render]
        return self.total[render] / count if count else math.nan


Styles = Path | Sequence[tuple[Path, float]]  # one style image, or a weighted blend of several


def _style_images(style: Styles, size: int) -> list[tuple[torch.Tensor, float]]:
    pairs = [(style, 1.0)] if isinstance(style, Path | str) else list(style)
    return [(load_style(Path(path), size), float(weight)) for path, weight in pairs]


def style_distance(frames: Iterable[np.ndarray], style: Styles, net: StyleNet,
                   opts: EvalOptions = EvalOptions()) -> float:
    """Mean style distance (see _StyleMeter) of every ``style_every``-th of ``frames`` from
    ``style``: an image, or (image, weight) pairs blended as a render blends them."""
    check_eval_options(opts)
    meter = _StyleMeter(net, _style_images(style, opts.style_size), opts.max_side)
    for index, frame in enumerate(frames):
        if index % opts.style_every == 0:
            meter.add(frame)
    return meter.value()


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _video_frames(source: Source) -> Iterator[np.ndarray]:
    for item in source.items():
        if isinstance(item, Frame):  # the other streams' packets are of no use here
            yield item.rgb


def evaluate(source: Path, stylized: Path, opts: EvalOptions = EvalOptions(),
             style: Styles | None = None, net: StyleNet | None = None) -> EvalReport:
    """Warping errors of ``stylized`` against the ``source`` it was made from.

    With ``style`` (and the ``net`` whose encoder gives the statistics) the report also
    carries the style distance; pass a per-frame baseline video as ``stylized`` to get
    its figures the same way, or both to evaluate_many. Both files are decoded once, in
    step, on the media module's background threads. MediaError when their frame counts
    differ.
    """
    return evaluate_many(source, [stylized], opts, style=style, net=net)[0]


def evaluate_many(source: Path, stylized: Sequence[Path], opts: EvalOptions = EvalOptions(),
                  style: Styles | None = None, net: StyleNet | None = None,
                  trace: Trace | None = None) -> list[EvalReport]:
    """evaluate for several renders of one ``source``, one report each, in their order.

    The source's flows and masks are computed once, for all of them, so each report holds
    the figures evaluate would give for that render alone. Every file is decoded once, all
    in step; the renders must have one evaluation size (MediaError otherwise). ``trace``
    (eval_report.Trace for as many renders) collects the per-frame curves and worst frames.
    """
    source, renders = Path(source), [Path(path) for path in stylized]
    if not renders:
        raise OptionError(f"{source}: give at least one stylized video to evaluate")
    check_eval_options(opts)
    if trace is not None and len(trace.curves) != len(renders):
        raise ValueError(f"trace is for {len(trace.curves)} renders, not {len(renders)}")
    # Before any decoding: fails first without OpenCV.
    meter = _WarpMeter(opts, len(renders), trace)
    if style is not None and net is None:
        raise OptionError(f"{style}: the style distance needs the model's encoder; "
                          f"pass net with style")
    style_meter = (_StyleMeter(net, _style_images(style, opts.style_size), opts.max_side,
                               len(renders))
                   if style is not None and net is not None else None)
    # Opened here rather than inside the generators so every decode thread stops as soon
    # as anything fails, not whenever the abandoned generators are collected.
    with ExitStack() as stack:
        videos = [stack.enter_context(open_source(path)) for path in (source, *renders)]
        rows = _zipped(*(_video_frames(video) for video in videos))
        try:
            for index, (src, *sty) in enumerate(rows):
                meter.add(src, sty)
                if style_meter is not None and index % opts.style_every == 0:
                    for render, frame in enumerate(sty):
                        style_meter.add(frame, render)
        except _FrameCountError as err:
            raise MediaError(f"frame counts differ: {source} has {err.counts[0]} frames, "
                             f"{renders[err.render]} has {err.counts[1 + err.render]}; "
                             f"compare a video with the source it was made from") from None
        except _SizeError as err:
            raise MediaError.about(
                "{path}: {what}; renders compared in one run need one evaluation size: set "
                "{max_side} to at most {longest} if they share an aspect ratio, or evaluate "
                "them one at a time", path=renders[err.render], what=err,
                longest=err.longest) from None
        except _FrameError as err:
            culprit = source if err.render is None else renders[err.render]
            raise MediaError(f"{culprit}: {err}") from None
    if meter.frames < 2:
        raise MediaError(f"{renders[0]}: only {meter.frames} frame; the warping error "
                         f"needs at least 2")
    styled = [style_meter.value(i) if style_meter is not None else None
              for i in range(len(renders))]
    return [EvalReport(
        warp_error=errors.short,
        warp_error_source=errors.short_source,
        ratio=_ratio(errors.short, errors.short_source),
        long_term=errors.long,
        long_term_source=errors.long_source,
        long_term_ratio=_ratio(errors.long, errors.long_source),
        frames=errors.frames,
        flow=opts.flow,
        style_distance=distance,
        skipped_pairs=errors.short_skipped,
        long_skipped_pairs=errors.long_skipped,
    ) for errors, distance in zip(meter.result(), styled, strict=True)]
