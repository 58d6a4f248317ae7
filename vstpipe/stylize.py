"""The stylizer: encoder -> AdaIN with (blended) style statistics -> decoder, on one device."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import ops, palette
from .errors import OptionError
from .model import StyleNet
from .spec import DEVICES, PRECISIONS, check_choice
from .tensors import MIN_SIDE, resize


def resolve_device(name: str) -> torch.device:
    """``name`` (a valid spec.Compute device) as a device that exists here."""
    check_choice("device", name, DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError.about("{device} cuda: no CUDA device is available here; use "
                                "{device} cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The dtype to run in; None means `auto` on the CPU, decided by ``pick_cpu_precision``.

    auto is fp16 autocast on CUDA. On the CPU bf16 ran VGG19 + decoder about 2.1x faster than
    fp32 here, but its speed depends on the CPU and its error on the weights (the real uvc-lab
    weights differ from fp32 by up to 18/255): precision.py decides.
    """
    check_choice("precision", name, PRECISIONS)
    if name == "auto":
        return torch.float16 if device.type == "cuda" else None
    if name == "fp16" and device.type != "cuda":
        raise OptionError.about("{precision} fp16 needs {device} cuda; use bf16 or fp32 on the "
                                "CPU")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


@dataclass(frozen=True)
class StyleStats:
    mean: torch.Tensor  # (1, C, 1, 1) float32
    std: torch.Tensor  # (1, C, 1, 1) float32
    colour: palette.ColourTarget  # the image's colour moments, for a family's palette stage


class Stylizer:
    """Runs a StyleNet in the chosen precision, channels_last; statistics stay in float32."""

    def __init__(self, net: StyleNet, device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        # fp16 on CUDA runs under autocast with fp32 weights; bf16 on the CPU stores bf16 weights,
        # which is what made the CPU path fast.
        weight_dtype = torch.bfloat16 if dtype == torch.bfloat16 else torch.float32
        self.net = net.to(device=device, dtype=weight_dtype, memory_format=torch.channels_last)

    def _autocast(self) -> torch.autocast:
        enabled = self.device.type == "cuda" and self.dtype == torch.float16
        return torch.autocast("cuda", dtype=torch.float16, enabled=enabled)

    @torch.inference_mode()
    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> AdaIN-layer features (B, C, H/8, W/8), float32."""
        with self._autocast():
            return self.net.encode(rgb.to(self.device)).float()

    @torch.inference_mode()
    def style_stats(self, rgb: torch.Tensor) -> StyleStats:
        """A style image's (1, 3, H, W) AdaIN-layer statistics, encoded at the family's
        ``style_scale`` of its size."""
        colour = palette.moments(rgb.to(self.device))
        scale = self.net.arch.style_scale
        if scale != 1.0:
            h, w = rgb.shape[-2:]
            rgb = resize(rgb, (max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale))))
        return StyleStats(*ops.mean_std(self.encode(rgb)), colour)

    @torch.inference_mode()
    def __call__(self, content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                 alpha: float | torch.Tensor = 1.0, preserve_color: bool = False,
                 own_stats: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
                 | None = None, colour: palette.ColourTarget | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> stylized (B, 3, H, W) float32, unclamped.

        mean/std are the target statistics, (B or 1, C, 1, 1): one style's, or the closed-form
        blend of several (ops.blend_stats). alpha is a float or a (B, 1, 1, 1) tensor.
        ``own_stats`` maps the content features to the (mean, std) to normalise them by
        (default: their own), e.g. statistics smoothed over time. ``colour``: the style's
        colours (``StyleBank.colours``), for a family with a palette stage (none: no stage);
        the stage is mixed in by ``alpha`` as AdaIN is.
        """
        margin = self.net.arch.margin if min(content.shape[-2:]) > self.net.arch.margin else 0
        feat = self.encode(ops.reflect_pad(content, margin))
        own = own_stats(feat) if own_stats is not None else None
        target = ops.mix(feat, ops.adain_stats(feat, mean, std, own), alpha)
        with self._autocast():
            out = ops.crop(self.net.decode(target), margin)
        stage = self.net.arch.palette
        if stage is not None and colour is not None:
            painted = palette.paint(out, content.to(out.device), colour, stage)
            out = ops.mix(out, painted, alpha)
        if preserve_color:
            out = ops.preserve_color(out, content.to(out.device, out.dtype))
        return out


def to_levels(rgb: torch.Tensor) -> torch.Tensor:
    """Float RGB -> the 8-bit levels an encoder would get (for precision comparisons)."""
    return (rgb.clamp(0, 1) * 255).round()
