"""lite-skip: lite-mobilenet with a finer path for edges.

lite-mobilenet's AdaIN layer (``expanded_conv_6``'s expansion, 192 channels at 1/8) is a linear
map of a 32-channel bottleneck: half a number per pixel of the frame, so its decoder has to
invent every edge finer than an 8-pixel cell, and faces in small frames smear. This family keeps
that layer and adds the output of ``expanded_conv_2`` (24 channels at 1/4, the last layer before
the trunk halves again), folded into the 1/8 grid by pixel unshuffle (24 x 2 x 2 = 96 channels).
The encoder's output is one tensor of 192 + 96 = 288 channels at 1/8, so AdaIN, strength,
style blends, keyframes and every temporal method treat it as they treat any family's features:
AdaIN normalises the fine channels to the style's statistics too. The decoder unfolds them at
1/4 and concatenates them before its 1/4 convolution.

The decoder's published layout is lite-mobilenet's with that convolution taking 96 + 24 input
channels, so a lite-mobilenet decoder grows into one exactly (:func:`grow`: the new input
channels' weights start at zero, the output is unchanged) and training goes on from there. The
content loss compares all 288 channels, so it holds structure at 1/4 as well as at 1/8.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .base import RGB, Family
from .lite_mobilenet import CHANNELS, LiteDecoder, LiteEncoder
from .mobilenet_v2 import TAP_CHANNELS

SKIP_BLOCK = "expanded_conv_2"  # its output (24 channels at 1/4) is the fine path
SKIP = TAP_CHANNELS[SKIP_BLOCK]  # 24
FOLDED = SKIP * 4  # 96 channels at 1/8 after pixel unshuffle
# The fine path's activations are about 3.7x the AdaIN layer's (std 5.8 against 1.6 on real
# frames); scaled by 1/4 they weigh about as much per channel in the content and style losses
# (1/3 of the content term in all). AdaIN is indifferent to the scale.
SCALE = 0.25
GROWN = "2.1.weight"  # the decoder convolution at 1/4 that takes the fine path in


class LiteSkipEncoder(LiteEncoder):
    """lite-mobilenet's encoder; the AdaIN layer's output carries the folded fine path."""

    def taps(self, rgb: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, H, W) RGB in [0, 1]
        out, skip = self.walk(rgb, keep=SKIP_BLOCK)  # skip: (B, 24, H/4, W/4)
        # An odd side at 1/4 (a frame whose side is not a multiple of 8, as a style image may
        # be) gets its last row or column repeated, so that the folded grid is the 1/8 grid:
        # ceil(side / 8) under TensorFlow's SAME padding.
        skip = F.pad(skip, (0, skip.shape[-1] % 2, 0, skip.shape[-2] % 2), "replicate")
        out[-1] = torch.cat([out[-1], F.pixel_unshuffle(skip, 2) * SCALE], dim=1)
        return out  # the last: (B, 288, H/8, W/8)


class LiteSkipDecoder(LiteDecoder):
    """LiteDecoder whose 1/4 convolution also takes the unfolded fine path (0.55 M params)."""

    def __init__(self) -> None:
        super().__init__()
        self[2][1] = nn.Conv2d(96 + SKIP, 96, 3)

    def quarter(self, feat: torch.Tensor) -> torch.Tensor:
        """The decoder through its 1/4 convolution, the fine path taken in: (B, 96, 2h, 2w)."""
        x = self[1](self[0](feat[:, :CHANNELS]))
        return self[2](torch.cat([x, F.pixel_shuffle(feat[:, CHANNELS:CHANNELS + FOLDED], 2)],
                                 dim=1))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:  # (B, 288, h, w)
        x = self.quarter(feat)
        for layer in list(self)[3:]:
            x = layer(x)
        return x


def grow(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A lite-mobilenet decoder state as a lite-skip one that decodes the same picture: the
    fine path's input weights are zero."""
    grown = dict(state)
    weight = state[GROWN]
    grown[GROWN] = torch.cat([weight, weight.new_zeros(weight.shape[0], SKIP,
                                                       *weight.shape[2:])], dim=1)
    return grown


def _published(role: str) -> nn.Module:
    return LiteSkipEncoder() if role == "encoder" else LiteSkipDecoder()


FAMILY = Family("lite-skip", {"encoder": "encoder.safetensors",
                              "decoder": "decoder.safetensors"},
                channels=CHANNELS + FOLDED, space=RGB, published=_published,
                encoder=LiteSkipEncoder, decoder=LiteSkipDecoder, margin=16, work_side=320,
                style_scale=0.5)
