"""The one function that wires decode -> batch -> stylize -> encode, with a progress callback."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import ops
from .errors import OptionError
from .images import load_style
from .media import (
    EncodeOptions,
    Frame,
    check_encode_options,
    check_output_path,
    open_sink,
    open_source,
    probe,
)
from .models import StyleNet
from .stylize import BF16_TOLERANCE, Stylizer, pick_cpu_precision, resolve_device, resolve_precision
from .tensors import MIN_SIDE, network_size, to_frames, to_tensor


@dataclass(frozen=True)
class LookOptions:
    styles: tuple[Path, ...]  # style images, at least one
    weights: tuple[float, ...] = ()  # one per style, any positive scale; empty = equal weights
    alpha: float = 1.0  # strength in [0, 1]: 0 = content only, 1 = full style (eq. 10)
    preserve_color: bool = False  # keep the source's colours (luminance-only transfer)
    style_size: int = 512  # shorter side of a style image when its statistics are taken


@dataclass(frozen=True)
class ComputeOptions:
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    batch: int = 4  # frames per forward pass
    max_side: int | None = None  # the network sees at most this many pixels on the longer side


@dataclass(frozen=True)
class RenderOptions:
    look: LookOptions
    compute: ComputeOptions = field(default_factory=ComputeOptions)
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    overwrite: bool = False  # replace an existing output file
    queue_size: int = 8  # decoded frames buffered ahead of the model (bounds memory)


@dataclass(frozen=True)
class RenderReport:
    frames: int
    seconds: float
    precision: str  # the precision that ran, and why when it was chosen automatically


Progress = Callable[[int, int | None], None]  # (frames done, frames expected or None)


def validate(opts: RenderOptions) -> None:
    """Reject impossible option values before any file is opened."""
    look, comp = opts.look, opts.compute
    if not look.styles:
        raise OptionError("no style given; pass --style IMAGE (or a preset)")
    if look.weights and len(look.weights) != len(look.styles):
        raise OptionError(f"--weights has {len(look.weights)} values for {len(look.styles)} "
                          "styles; give one weight per --style")
    if not all(math.isfinite(w) and w >= 0 for w in look.weights) or (
            look.weights and sum(look.weights) <= 0):
        raise OptionError(f"--weights {','.join(map(str, look.weights))}: weights must be >= 0 "
                          "with a positive sum")
    if not 0.0 <= look.alpha <= 1.0:  # also rejects nan
        raise OptionError(f"--alpha {look.alpha} is outside [0, 1]")
    if look.style_size < 64:
        raise OptionError(f"--style-size {look.style_size} is too small; use 64 or more")
    if comp.batch < 1:
        raise OptionError(f"--batch {comp.batch}: use 1 or more frames per batch")
    if comp.max_side is not None and comp.max_side < MIN_SIDE:
        raise OptionError(f"--max-side {comp.max_side}: use {MIN_SIDE} or more pixels")


def preflight(src: Path, out: Path, opts: RenderOptions) -> list[torch.Tensor]:
    """Every check that needs no model: options, output path, input file, style images.

    Run before a model is downloaded or loaded, so a typo costs nothing. Returns the style
    images, (1, 3, H, W) in [0, 1].
    """
    validate(opts)
    check_encode_options(opts.encode)
    check_output_path(src, out, opts.overwrite)
    probe(src)
    return [load_style(p, opts.look.style_size) for p in opts.look.styles]


def style_target(stylizer: Stylizer, styles: list[torch.Tensor], look: LookOptions
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Blended target statistics (closed form, eq. 12) of the look's styles, each encoded once."""
    stats = [stylizer.style_stats(image) for image in styles]
    weights = torch.tensor(look.weights or [1.0] * len(stats), dtype=torch.float32)
    means = torch.stack([s.mean for s in stats])  # (K, 1, C, 1, 1)
    stds = torch.stack([s.std for s in stats])
    return ops.blend_stats(means, stds, weights.to(means.device))


@dataclass(frozen=True)
class _Engine:
    """A stylizer in its final precision, with the look's target statistics."""

    stylizer: Stylizer
    mean: torch.Tensor
    std: torch.Tensor
    precision: str  # what ran, e.g. "bf16 (auto: max 1/255 from fp32 on the first frame)"

    def __call__(self, x: torch.Tensor, look: LookOptions) -> torch.Tensor:
        return self.stylizer(x, self.mean, self.std, look.alpha, look.preserve_color)


def _engine(net: StyleNet, device: torch.device, dtype: torch.dtype | None,
            styles: list[torch.Tensor], look: LookOptions, first: torch.Tensor) -> _Engine:
    """Build the stylizer; for `auto` on the CPU, measure bf16 against fp32 on ``first``."""
    if dtype is not None:
        stylizer = Stylizer(net, device, dtype)
        return _Engine(stylizer, *style_target(stylizer, styles, look), _NAMES[dtype])

    targets: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}

    def trial(candidate: Stylizer) -> torch.Tensor:
        targets[candidate.dtype] = style_target(candidate, styles, look)
        return candidate(first, *targets[candidate.dtype], look.alpha, look.preserve_color)

    stylizer, measured = pick_cpu_precision(net, trial)
    return _Engine(stylizer, *targets[stylizer.dtype],
                   f"{_NAMES[stylizer.dtype]} (auto: on the first frame bf16 was "
                   f"{measured.speedup:.1f}x as fast as fp32 and differed by up to "
                   f"{measured.diff}/255; bf16 is used when faster and within "
                   f"{BF16_TOLERANCE}/255)")


_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def render(src: Path, out: Path, net: StyleNet, opts: RenderOptions,
           progress: Progress | None = None) -> RenderReport:
    """Stylize every frame of ``src`` into ``out``; audio/subtitles/data are copied as packets.

    Frames stream through bounded queues (decode thread -> this thread -> encode thread), so
    memory does not grow with the length of the video. ``out`` appears only on success.
    """
    styles = preflight(src, out, opts)
    device = resolve_device(opts.compute.device)
    dtype = resolve_precision(opts.compute.precision, device)
    look = opts.look
    engine: _Engine | None = None
    start, done = time.perf_counter(), 0
    with open_source(src, queue_size=opts.queue_size) as source:
        info = source.info
        net_size = network_size(info.width, info.height, opts.compute.max_side)
        out_size = opts.encode.size or (info.width, info.height)
        with open_sink(out, source, opts.encode, overwrite=opts.overwrite) as sink:
            depth16 = sink.bit_depth > 8

            def flush(batch: list[Frame]) -> None:
                nonlocal engine, done
                x = to_tensor(batch, net_size, device)  # (B, 3, h, w) in [0, 1]
                try:
                    if engine is None:
                        engine = _engine(net, device, dtype, styles, look, x[:1])
                    y = engine(x, look)
                except torch.OutOfMemoryError:
                    raise OptionError(f"out of {device.type} memory stylizing {len(batch)} "
                                      f"frames at {net_size[0]}x{net_size[1]}; lower --batch "
                                      "or --max-side") from None
                for frame in to_frames(y, batch, out_size, depth16):
                    sink.write(frame)
                done += len(batch)
                if progress:
                    progress(done, info.frames)

            pending: list[Frame] = []
            for item in source.items():
                if not isinstance(item, Frame):
                    sink.copy(item)
                    continue
                pending.append(item)
                if len(pending) == opts.compute.batch:
                    flush(pending)
                    pending = []
            if pending:
                flush(pending)
    return RenderReport(done, time.perf_counter() - start, engine.precision if engine else "-")
