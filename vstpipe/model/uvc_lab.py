"""uvc-lab: the colour autoencoder of UVC (Li, Liu et al. 2019; Liusifei/UVC, MIT).

UVC's ``encoder3(reduce=True)`` / ``decoder3(reduce=True)``, working on OpenCV-style Lab in
[-1, 1]; AdaIN runs on its reduced relu3_1 features (256 channels, 1/8 resolution), so frames
are fed at sizes that are multiples of 8. The running modules are the published layouts.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import LAB, Family


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, 1, 0)


def _pcr(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Reflection pad, convolution, ReLU: UVC's repeated block."""
    return torch.relu(conv(nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")))


class UVCEncoder(nn.Module):
    """UVC ``encoder3(reduce=True)``: conv1..conv6 (relu3_1) then ``downsample`` to 1/8."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _conv(3, 3, 1)
        self.conv2, self.conv3 = _conv(3, 64), _conv(64, 64)
        self.conv4, self.conv5 = _conv(64, 128), _conv(128, 128)
        self.conv6 = _conv(128, 256)
        self.downsample = nn.Sequential(nn.MaxPool2d(2, 2), _conv(256, 256, 1), nn.ReLU())

    def taps(self, lab: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, H, W) Lab in [-1, 1]
        x = _pcr(self.conv2, self.conv1(lab))
        r1 = x
        x = _pcr(self.conv3, x)
        x = _pcr(self.conv4, nn.functional.max_pool2d(x, 2))
        r2 = x
        x = _pcr(self.conv5, x)
        x = _pcr(self.conv6, nn.functional.max_pool2d(x, 2))
        return [r1, r2, x, self.downsample(x)]  # relu1_1, relu2_1, relu3_1, reduced (1/8)

    def forward(self, lab: torch.Tensor) -> torch.Tensor:
        return self.taps(lab)[-1]  # (B, 256, H/8, W/8)


class UVCDecoder(nn.Module):
    """UVC ``decoder3(reduce=True)``: ``upsample`` then conv7..conv11 and tanh."""

    def __init__(self) -> None:
        super().__init__()
        self.upsample = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                      _conv(256, 256, 1), nn.ReLU())
        self.conv7, self.conv8 = _conv(256, 128), _conv(128, 128)
        self.conv9, self.conv10 = _conv(128, 64), _conv(64, 64)
        self.conv11 = _conv(64, 3)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:  # (B, 256, h, w)
        def up(x: torch.Tensor) -> torch.Tensor:
            return nn.functional.interpolate(x, scale_factor=2, mode="nearest")

        x = up(_pcr(self.conv7, self.upsample(feat)))
        x = up(_pcr(self.conv9, _pcr(self.conv8, x)))
        x = _pcr(self.conv10, x)
        x = self.conv11(nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"))
        return torch.tanh(x)  # (B, 3, 8h, 8w) Lab in [-1, 1]


def _published(role: str) -> nn.Module:
    return UVCEncoder() if role == "encoder" else UVCDecoder()


FAMILY = Family("uvc-lab", {"encoder": "encoder_single_gpu.pth",
                            "decoder": "decoder_single_gpu.pth"},
                channels=256, space=LAB, published=_published, encoder=UVCEncoder,
                decoder=UVCDecoder)
