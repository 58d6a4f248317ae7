"""The one function that wires decode -> batch -> stylize -> encode, with a progress callback."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import ops
from .errors import OptionError
from .images import load_style
from .media import EncodeOptions, Frame, check_output_path, open_sink, open_source
from .models import StyleNet
from .stylize import Stylizer, resolve_device, resolve_precision
from .tensors import network_size, to_frames, to_tensor


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


Progress = Callable[[int, int | None], None]  # (frames done, frames expected or None)


def validate(opts: RenderOptions) -> None:
    """Reject impossible option values before any file is opened."""
    look, comp = opts.look, opts.compute
    if not look.styles:
        raise OptionError("no style given; pass --style IMAGE (or a preset)")
    if look.weights and len(look.weights) != len(look.styles):
        raise OptionError(f"--weights has {len(look.weights)} values for {len(look.styles)} "
                          "styles; give one weight per --style")
    if any(w < 0 for w in look.weights) or (look.weights and sum(look.weights) <= 0):
        raise OptionError(f"--weights {','.join(map(str, look.weights))}: weights must be >= 0 "
                          "with a positive sum")
    if not 0.0 <= look.alpha <= 1.0:
        raise OptionError(f"--alpha {look.alpha} is outside [0, 1]")
    if look.style_size < 64:
        raise OptionError(f"--style-size {look.style_size} is too small; use 64 or more")
    if comp.batch < 1:
        raise OptionError(f"--batch {comp.batch}: use 1 or more frames per batch")
    if comp.max_side is not None and comp.max_side < 8:
        raise OptionError(f"--max-side {comp.max_side}: use 8 or more pixels")
    size = opts.encode.size
    if size is not None and (size[0] < 1 or size[1] < 1):
        raise OptionError(f"--size {size[0]}x{size[1]}: width and height must be positive")


def style_target(stylizer: Stylizer, look: LookOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Blended target statistics of the look's styles, each image encoded once."""
    stats = [stylizer.style_stats(load_style(p, look.style_size)) for p in look.styles]
    weights = torch.tensor(look.weights or [1.0] * len(stats), dtype=torch.float32)
    means = torch.stack([s.mean for s in stats])  # (K, 1, C, 1, 1)
    stds = torch.stack([s.std for s in stats])
    mean, std = ops.blend_stats(means, stds, weights.to(means.device))
    return mean, std


def render(src: Path, out: Path, net: StyleNet, opts: RenderOptions,
           progress: Progress | None = None) -> RenderReport:
    """Stylize every frame of ``src`` into ``out``; audio/subtitles/data are copied as packets.

    Frames stream through bounded queues (decode thread -> this thread -> encode thread), so
    memory does not grow with the length of the video. ``out`` appears only on success.
    """
    validate(opts)
    check_output_path(src, out, opts.overwrite)
    device = resolve_device(opts.compute.device)
    stylizer = Stylizer(net, device, resolve_precision(opts.compute.precision, device))
    mean, std = style_target(stylizer, opts.look)
    start, done = time.perf_counter(), 0
    with open_source(src, queue_size=opts.queue_size) as source:
        info = source.info
        net_size = network_size(info.width, info.height, opts.compute.max_side)
        out_size = opts.encode.size or (info.width, info.height)
        with open_sink(out, source, opts.encode, overwrite=opts.overwrite) as sink:
            depth16 = sink.bit_depth > 8

            def flush(batch: list[Frame]) -> None:
                x = to_tensor(batch, net_size, device)  # (B, 3, h, w) in [0, 1]
                y = stylizer(x, mean, std, opts.look.alpha, opts.look.preserve_color)
                for frame in to_frames(y, batch, out_size, depth16):
                    sink.write(frame)

            pending: list[Frame] = []
            for item in source.items():
                if not isinstance(item, Frame):
                    sink.copy(item)
                    continue
                pending.append(item)
                if len(pending) == opts.compute.batch:
                    flush(pending)
                    done += len(pending)
                    pending = []
                    if progress:
                        progress(done, info.frames)
            if pending:
                flush(pending)
                done += len(pending)
                if progress:
                    progress(done, info.frames)
    return RenderReport(done, time.perf_counter() - start)
