"""lite-edge: lite-skip with the frame's lightness at full resolution, for lines.

lite-skip's decoder sees the frame at 1/4 at the finest, so it can place an edge to within four
pixels and no closer: it paints soft patches where a painter draws an outline. This family adds
the frame's lightness (Rec. 601 luma) at full resolution, folded into the 1/8 grid by pixel
unshuffle (1 x 8 x 8 = 64 channels) after lite-skip's 288, so the encoder's output is still one
tensor at 1/8 and AdaIN, strength, blends, keyframes and every temporal method treat it as
before (AdaIN sets each folded channel's mean and std to the style's: the lightness keeps its
edges and takes the style's tones). The decoder unfolds it at full resolution and concatenates
it before its last 3x3 convolution with a ReLU (the one after the last upsampling), so it can
draw lines where the frame has edges.

The decoder's published layout is lite-skip's with that convolution taking 64 + 1 input
channels, so a lite-skip decoder grows into one exactly (:func:`grow`: the new channel's weights
start at zero, the output is unchanged). The lightness is scaled by ``SCALE`` so that it weighs
little in the content and style losses (a large weight would pull the painting back toward the
photograph); AdaIN is indifferent to the scale and the decoder's weights absorb it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .base import RGB, Family
from .lite_mobilenet import CHANNELS
from .lite_skip import FOLDED, LiteSkipDecoder, LiteSkipEncoder

FOLD = 8  # the AdaIN grid's stride
EDGE = FOLD * FOLD  # 64 folded lightness channels at 1/8
# The folded lightness (std ~0.25 on real frames) scaled by 0.5 weighs about 1/100 of a channel
# of the AdaIN layer or of the fine path (std ~1.5) in the content and style terms.
SCALE = 0.5
LUMA = (0.299, 0.587, 0.114)
GROWN = "5.2.weight"  # the convolution after the last upsampling, at full resolution


def lightness(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) Rec. 601 luma."""
    weights = rgb.new_tensor(LUMA).view(1, 3, 1, 1)
    return (rgb * weights).sum(dim=1, keepdim=True)


class LiteEdgeEncoder(LiteSkipEncoder):
    """lite-skip's encoder; the AdaIN layer's output also carries the folded lightness."""

    def taps(self, rgb: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, H, W) RGB in [0, 1]
        out = super().taps(rgb)
        luma = lightness(rgb)
        # A side that is not a multiple of 8 (a style image may have one) gets its last rows
        # or columns repeated up to the 1/8 grid: ceil(side / 8) under TF's SAME padding.
        luma = F.pad(luma, (0, -rgb.shape[-1] % FOLD, 0, -rgb.shape[-2] % FOLD), "replicate")
        out[-1] = torch.cat([out[-1], F.pixel_unshuffle(luma, FOLD) * SCALE], dim=1)
        return out  # the last: (B, 352, H/8, W/8)


class LiteEdgeDecoder(LiteSkipDecoder):
    """LiteSkipDecoder whose full-resolution convolution also takes the unfolded lightness."""

    def __init__(self) -> None:
        super().__init__()
        self[5][2] = nn.Conv2d(64 + 1, 32, 3)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:  # (B, 352, h, w)
        x = self[4](self[3](self.quarter(feat)))  # (B, 64, 4h, 4w)
        up, pad, conv, relu = self[5]
        x = relu(conv(pad(torch.cat([up(x), F.pixel_shuffle(feat[:, CHANNELS + FOLDED:],
                                                                FOLD)], dim=1))))
        return self[7](self[6](x))


def grow(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A lite-skip decoder state as a lite-edge one that decodes the same picture: the
    lightness's input weights are zero."""
    grown = dict(state)
    weight = state[GROWN]
    grown[GROWN] = torch.cat([weight, weight.new_zeros(weight.shape[0], 1, *weight.shape[2:])],
                             dim=1)
    return grown


def _published(role: str) -> nn.Module:
    return LiteEdgeEncoder() if role == "encoder" else LiteEdgeDecoder()


FAMILY = Family("lite-edge", {"encoder": "encoder.safetensors",
                              "decoder": "decoder.safetensors"},
                channels=CHANNELS + FOLDED + EDGE, space=RGB, published=_published,
                encoder=LiteEdgeEncoder, decoder=LiteEdgeDecoder, margin=16, work_side=320,
                style_scale=0.5)
