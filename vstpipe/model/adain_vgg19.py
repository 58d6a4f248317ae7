"""adain-vgg19: pytorch-AdaIN (Huang & Belongie 2017; naoto0804/pytorch-AdaIN, MIT).

The encoder file ``vgg_normalised.pth`` is the whole VGG19 conv stack as one ``nn.Sequential``
(keys ``0.weight`` .. ``51.bias``) taking RGB in [0, 1]; we run it up to relu4_1 (index 30).
The decoder file ``decoder.pth`` mirrors it (keys ``1.weight`` .. ``28.bias``). The encoder
downsamples by 8, so frames are fed at sizes that are multiples of 8.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import RGB, Family

# VGG19 conv widths, "M" = 2x2 max-pool (ceil_mode, as published). The published Sequential
# starts with a 1x1 conv (the "normalised" colour transform), then ReflectionPad, Conv, ReLU...
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512)
_VGG_RELU4_1 = 31  # number of Sequential children up to and including relu4_1
_VGG_TAPS = (3, 10, 17, 30)  # indices of relu1_1, relu2_1, relu3_1, relu4_1


def _vgg_layers() -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    ch = 3
    for v in _VGG19:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, v, 3), nn.ReLU()]
            ch = v
    return layers


def _adain_decoder_layers() -> list[nn.Module]:
    # (in, out, upsample-after) per conv, mirroring VGG19 from relu4_1 back to RGB
    plan = ((512, 256, True), (256, 256, False), (256, 256, False), (256, 256, False),
            (256, 128, True), (128, 128, False), (128, 64, True), (64, 64, False))
    layers: list[nn.Module] = []
    for cin, cout, up in plan:
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), nn.ReLU()]
        if up:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    layers += [nn.ReflectionPad2d(1), nn.Conv2d(64, 3, 3)]
    return layers


class VGGEncoder(nn.Module):
    """VGG19 up to relu4_1; ``forward`` gives relu4_1, ``taps`` gives relu1_1..relu4_1."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(*_vgg_layers()[:_VGG_RELU4_1])

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [0, 1]
        return self.net(rgb)  # (B, 512, H/8, W/8)

    def taps(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        out, x = [], rgb
        for i, layer in enumerate(self.net):
            x = layer(x)
            if i in _VGG_TAPS:
                out.append(x)
        return out


class VGGDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(*_adain_decoder_layers())

    def forward(self, feat: torch.Tensor) -> torch.Tensor:  # (B, 512, h, w)
        return self.net(feat)  # (B, 3, 8h, 8w), RGB, roughly [0, 1]


def _published(role: str) -> nn.Module:
    """The published files' own layout: the whole VGG19, and the decoder, as Sequentials."""
    return nn.Sequential(*_vgg_layers()) if role == "encoder" else \
        nn.Sequential(*_adain_decoder_layers())


def _state_key(role: str, key: str) -> str | None:
    """VGGEncoder and VGGDecoder hold the published Sequential as ``net``; the encoder file's
    layers past relu4_1 are never run, so they are not loaded."""
    if role == "encoder" and int(key.split(".")[0]) >= _VGG_RELU4_1:
        return None
    return f"net.{key}"


FAMILY = Family("adain-vgg19", {"encoder": "vgg_normalised.pth", "decoder": "decoder.pth"},
                channels=512, space=RGB, published=_published, encoder=VGGEncoder,
                decoder=VGGDecoder, state_key=_state_key)
