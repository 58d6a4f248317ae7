"""The one function that wires decode -> batch -> stylize -> encode, with a progress callback."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch

from . import driver, ops, palette, rawio
from .driver import Progress
from .errors import MediaError, ModelError, OptionError
from .keyframes import Timeline
from .media import Frame, Source, check_frame_count, check_output_path, open_sink, open_source
from .model import StyleNet
from .precision import SpeedCache, describe, pick_cpu_precision, speed_key
from .rawio import RawOptions
from .spec import Job, Look
from .stylize import Stylizer, resolve_device, resolve_precision
from .temporal.chain import Temporal
from .tensors import network_size, resize, to_frames, to_tensor

if TYPE_CHECKING:
    from .sessions import Sessions


@dataclass(frozen=True)
class RenderReport:
    frames: int
    seconds: float
    precision: str  # the precision that ran, and why when it was chosen automatically


def check_job(src: Path, out: Path, job: Job, overwrite: bool = False) -> None:
    """Every check of a render that reads no file: the temporal methods can run here, and the
    output path may be written (the job's values checked themselves when it was built).

    Run before a model is downloaded or loaded, so a typo costs nothing; the input is
    checked by opening it (:func:`~vstpipe.media.open_source`) and the style images by
    reading them (:meth:`~vstpipe.sessions.Sessions.styles`), each once.
    """
    Temporal.check(job.temporal)
    check_output_path(src, out, overwrite)


@dataclass(frozen=True)
class StyleBank:
    """Channel statistics of every style image of a look, each encoded once per render."""

    means: torch.Tensor  # (K, 1, C, 1, 1)
    stds: torch.Tensor  # (K, 1, C, 1, 1)
    colour_means: torch.Tensor  # (K, 3): each image's YCbCr mean, for a palette stage
    colour_covs: torch.Tensor  # (K, 3, 3): and covariance

    @staticmethod
    def encode(stylizer: Stylizer, styles: list[torch.Tensor]) -> StyleBank:
        stats = [stylizer.style_stats(image) for image in styles]
        return StyleBank(torch.stack([s.mean for s in stats]), torch.stack([s.std for s in stats]),
                         torch.cat([s.colour.mean for s in stats]),
                         torch.cat([s.colour.cov for s in stats]))

    def target(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Closed-form blend (eq. 12) for weights (K,) or one blend per frame (K, B)."""
        return ops.blend_stats(self.means, self.stds, weights.to(self.means.device))

    def colours(self, weights: torch.Tensor) -> palette.ColourTarget:
        """The blended styles' colours for the same weights (palette.blend)."""
        return palette.blend(self.colour_means, self.colour_covs,
                             weights.to(self.colour_means.device))


def frame_looks(timeline: Timeline, seconds: Sequence[Fraction | float]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame style weights (K, B) and alpha (B, 1, 1, 1) at the frames' times."""
    looks = [timeline.at(t) for t in seconds]
    weights = torch.tensor(np.stack([w for w, _ in looks], axis=1), dtype=torch.float32)
    alpha = torch.tensor([a for _, a in looks], dtype=torch.float32).view(-1, 1, 1, 1)
    return weights, alpha


@dataclass(frozen=True)
class _Engine:
    """A stylizer in its final precision, with the statistics of the look's styles."""

    stylizer: Stylizer
    bank: StyleBank
    precision: str  # what ran, e.g. "bf16 (auto: max 1/255 from fp32 on the first frame)"
    temporal: Temporal | None = None  # temporal state; None for one-off frames

    def __call__(self, x: torch.Tensor, look: Look, seconds: Sequence[Fraction],
                 first_index: int = 0) -> torch.Tensor:
        weights, alpha = frame_looks(look.timeline, seconds)
        mean, std = self.bank.target(weights)
        # the styles' colours, only for a family that paints with them (palette.py)
        colour = self.bank.colours(weights) if self.stylizer.net.arch.palette else None
        temporal = self.temporal if self.temporal and self.temporal.active else None
        if temporal is None:
            y = self.stylizer(x, mean, std, alpha.to(x.device), look.preserve_color,
                              colour=colour)
        else:
            starts = temporal.shot_starts(x, first_index)
            y = self.stylizer(x, mean, std, alpha.to(x.device), look.preserve_color,
                              temporal.stats_hook(starts), colour)
            y = temporal.blend(x, y, starts)
        self._check_finite(y, first_index)
        return y

    def _check_finite(self, y: torch.Tensor, first_index: int) -> None:
        """NaN or Inf would be encoded as black (or garbage) pixels with exit status 0; one
        reduction per batch, next to the network's cost, finds them before they are encoded."""
        if not bool(torch.isfinite(y).all()):
            last = first_index + len(y) - 1
            frames = f"frame {last}" if last == first_index else f"frames {first_index}..{last}"
            raise ModelError.about(
                "model '{net}' gave NaN/Inf pixels for {frames} in {dtype}; its weights may be "
                "damaged (`vstpipe models verify`) or out of range for this precision (try "
                "{precision} fp32); stopped before encoding them", net=self.stylizer.net.name,
                frames=frames, dtype=_NAMES.get(self.stylizer.dtype, "its precision"))


def _engine(net: StyleNet, device: torch.device, dtype: torch.dtype | None,
            styles: list[torch.Tensor], look: Look, first: torch.Tensor,
            first_time: Fraction, temporal: Temporal, stage: Stage) -> _Engine:
    """Build the stylizer; for `auto` on the CPU, bf16 or fp32 as precision.py decides."""
    if dtype is not None:
        stage(f"encoding {_count(len(styles), 'style image')}")
        stylizer = Stylizer(net, device, dtype)
        return _Engine(stylizer, StyleBank.encode(stylizer, styles), _NAMES[dtype], temporal)

    banks: dict[torch.dtype, StyleBank] = {}

    def trial(candidate: Stylizer) -> torch.Tensor:
        if candidate.dtype not in banks:
            banks[candidate.dtype] = StyleBank.encode(candidate, styles)
        return _Engine(candidate, banks[candidate.dtype], "")(first, look, [first_time])

    size = (first.shape[-1], first.shape[-2])
    key = speed_key(net.arch.name, size)
    stage(f"encoding {_count(len(styles), 'style image')}; checking bf16 against fp32 on the "
          "first frame")
    stylizer, measured = pick_cpu_precision(
        net, trial, key, SpeedCache(),
        on_measure=lambda: stage(f"timing bf16 and fp32 (once for {net.arch.name} at "
                                 f"{size[0]}x{size[1]} on this machine)"))
    return _Engine(stylizer, banks[stylizer.dtype], describe(stylizer.dtype, measured, key),
                   temporal)


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def mix_original(y: torch.Tensor, batch: list[Frame], original: list[float],
                 size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(1 - m) stylized + m source, at the output size, so m = 1 gives the source pixels."""
    m = torch.tensor(original, dtype=torch.float32, device=device).view(-1, 1, 1, 1)
    source = to_tensor(batch, size, device)
    return resize(y.float(), size).clamp(0, 1) * (1 - m) + source * m


def frame_seconds(frame: Frame) -> Fraction:
    """A frame's exact presentation time in seconds, from its pts: never from its index."""
    if frame.pts is None:
        raise MediaError("a decoded frame has no timestamp; keyframed looks need pts")
    return frame.pts * Fraction(frame.time_base)


Stage = Callable[[str], None]  # what a job is doing before its frames flow, for progress


def _quiet(_: str) -> None:
    pass


class Session:
    """Stylizes frames in presentation order, holding the temporal state of one job.

    The per-batch step of :func:`render`, usable on frames from anywhere (``vstpipe filter``
    feeds it raw frames from a pipe, the stylize effect one frame at a time). Batches must
    arrive in presentation order: the first frame's time is keyframe time 0, and its temporal
    methods carry state from batch to batch. The engine (and, for ``auto`` precision on the
    CPU, the bf16/fp32 trial) is built lazily on the first batch, so constructing a session
    costs nothing. Made by :class:`~vstpipe.sessions.Sessions`, which loads the network and
    the style images once.
    """

    def __init__(self, net: StyleNet, job: Job, styles: list[torch.Tensor],
                 frame_size: tuple[int, int]) -> None:
        self.job = job
        self._net, self._styles = net, styles
        self._device = resolve_device(job.compute.device)
        self._dtype = resolve_precision(job.compute.precision, self._device)
        if job.compute.max_side is not None:  # --max-side or the preset's: at most that
            self._net_size = network_size(frame_size[0], frame_size[1], job.compute.max_side)
        else:  # the model's working size, small frames enlarged to it; else the frame's
            self._net_size = network_size(frame_size[0], frame_size[1], net.arch.work_side,
                                          grow=True)
        self._engine: _Engine | None = None
        self._start: Fraction | None = None  # the first frame's time: keyframe time 0
        self.on_stage: Stage = _quiet  # told what the first batch does before frames flow
        self._done = 0

    def anchor(self, origin: Fraction) -> None:
        """Count keyframe time from ``origin`` (seconds on the frames' clock) instead of from
        the first frame processed: a trimmed render's keyframes stay on the source's clock."""
        if self._done:
            raise RuntimeError("Session.anchor() must come before the first batch")
        self._start = origin

    @property
    def network_size(self) -> tuple[int, int]:
        """(W, H) the network paints at: at most --max-side's, else the model's working size
        (small frames enlarged to it), else the frame's, in multiples of 8."""
        return self._net_size

    @property
    def precision(self) -> str:
        """The precision that ran, and why when chosen automatically; "-" before any batch."""
        return self._engine.precision if self._engine else "-"

    @property
    def frames_done(self) -> int:
        return self._done

    @property
    def model(self) -> str:
        """The name of the network that runs."""
        return self._net.name

    def process(self, batch: list[Frame], out_size: tuple[int, int], depth: int,
                look: Look | None = None) -> list[Frame]:
        """Stylize ``batch`` to frames of ``out_size`` (W, H) at ``depth`` 8, 16 or 32 bits.

        ``look`` replaces the job's look for this batch, e.g. an effect host's animated
        alpha; its timeline must name the same style images, whose statistics are cached.
        """
        look = look or self.job.look
        if look.timeline.styles != self.job.look.timeline.styles:
            raise OptionError("a session's look may change weights and alpha, not its styles")
        x = to_tensor(batch, self._net_size, self._device)  # (B, 3, h, w) in [0, 1]
        times = [Fraction(0)] * len(batch) if look.timeline.is_constant() else \
            [frame_seconds(f) for f in batch]
        if self._start is None:
            self._start = times[0]
        seconds = [t - self._start for t in times]
        try:
            if self._engine is None:
                self._engine = _engine(self._net, self._device, self._dtype, self._styles, look,
                                       x[:1], seconds[0], Temporal(self.job.temporal),
                                       self.on_stage)
                self.on_stage("stylizing")
            y = self._engine(x, look, seconds, self._done)
        except torch.OutOfMemoryError:
            w, h = self._net_size
            raise OptionError.about("out of {kind} memory stylizing {n} frames at {w}x{h}; "
                                    "lower {batch} or {max_side}", kind=self._device.type,
                                    n=len(batch), w=w, h=h) from None
        original = [look.timeline.original_at(t) for t in seconds]
        if any(original):  # fading to or from `none`: mix in the source pixels
            y = mix_original(y, batch, original, out_size, self._device)
        self._done += len(batch)
        return to_frames(y, batch, out_size, depth)


def render(src: Path, out: Path, job: Job, sessions: Sessions, *, overwrite: bool = False,
           allow_partial: bool = False, progress: Progress | None = None,
           fps: Fraction | None = None) -> RenderReport:
    """Stylize every frame of ``src`` (of ``job.trim``'s part) into ``out``; audio, subtitles and
    data are copied as packets (a trim keeps those that start in it).

    ``src`` and ``out`` may be stills or image sequences (``shot/%05d.png``; ``fps`` is an input
    sequence's rate, 25 when None). The input is opened once and each style image read once;
    ``out`` appears only on success.
    """
    check_job(src, out, job, overwrite)
    with open_source(src, queue_size=job.compute.queue, allow_partial=allow_partial,
                     fps=fps) as source:
        source.trim(job.trim)
        session = sessions.session(job, (source.info.width, source.info.height))
        return render_source(source, out, session, overwrite=overwrite, progress=progress)


def render_source(source: Source, out: Path, session: Session, *, overwrite: bool = False,
                  progress: Progress | None = None) -> RenderReport:
    """:func:`render` from an opened, not yet read ``source`` through ``session`` (for the
    source's frame size), after :func:`check_job`.

    Frames stream through bounded queues (decode thread -> this thread -> encode thread), so
    memory does not grow with the length of the video.
    """
    start = time.perf_counter()
    info, job = source.info, session.job
    source.trim(job.trim)
    check_frame_count(out, source.expected_frames)
    if not job.trim.whole:
        session.anchor(source.origin)
    out_size = job.encode.size or (info.width, info.height)
    with open_sink(out, source.plan, job.encode, overwrite=overwrite) as sink:
        depth = 16 if sink.bit_depth > 8 else 8
        driver.run(source, partial(session.process, out_size=out_size, depth=depth), sink,
                   job.compute.batch, progress, source.expected_frames)
    return RenderReport(session.frames_done, time.perf_counter() - start, session.precision)


@dataclass(frozen=True)
class FilterReport:
    frames: int  # frames written
    seconds: float
    precision: str  # as in RenderReport
    output_closed: bool  # the output's reader went away first (e.g. `| head -c`): not an error


def filter_preflight(job: Job, raw: RawOptions) -> None:
    """Every check of ``filter`` that reads nothing and needs no model."""
    Temporal.check(job.temporal)
    rawio.check(raw)
    if raw.frame_time is None and not job.look.timeline.is_constant():
        raise OptionError.about("{keyframes} needs {fps} or {timebase}: raw frames carry no "
                                "timestamps, and keyframe times are seconds")


def filter_raw(src: BinaryIO, dst: BinaryIO, session: Session, raw: RawOptions,
               progress: Progress | None = None) -> FilterReport:
    """Stylize raw frames read from ``src`` into raw frames on ``dst`` (``vstpipe filter``)
    through ``session`` (for frames of ``raw.size``), after :func:`filter_preflight`.

    The same Session and driver as ``render``, so the same frames at the same times give the
    same pixels. Reading, stylizing and writing overlap through bounded queues; memory does
    not grow with the stream. A stream ending inside a frame raises MediaError, but only after
    every complete frame before it was written.
    """
    start = time.perf_counter()
    job = session.job
    with rawio.RawReader(src, raw, job.compute.queue) as reader, \
            rawio.RawWriter(dst, raw.output) as writer:
        driver.run(reader, partial(session.process, out_size=raw.size, depth=raw.output.depth),
                   writer, job.compute.batch, progress)
    if not writer.closed:
        reader.check_end()
    return FilterReport(writer.frames_written, time.perf_counter() - start, session.precision,
                        writer.closed)
