"""uvc-tracker: UVC's tracker, the affinity estimator for training (``vstpipe finetune
--affinity uvc``), not a style family.

The checkpoint ``weights/checkpoint_latest.pth.tar`` holds the model
``Model_switchGTfixdot_swCC_Res`` of UVC's ``libs/model.py``. Only its ``gray_encoder`` (a
ResNet-18 without avgpool/fc whose layer3 and layer4 keep stride 1: 512 channels at 1/8) and
``normalize`` (ImageNet mean/std, stored as parameters) are used; the file also holds the
frozen colour branches ``rgb_encoder`` / ``decoder`` (the uvc-lab networks), which are part of
the layout but never run. Input: the L channel of OpenCV 8-bit Lab divided by 256, copied to 3
channels, then ImageNet-normalised per channel (UVC's ``(x + 1) / 2`` of ``(L - 128) / 128``).
Affinities use raw dot products of these features (UVC's ``NLM_woSoft``).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import color
from .base import LAB, Family
from .uvc_lab import UVCDecoder, UVCEncoder


class _BasicBlock(nn.Module):
    """ResNet basic block (torchvision key names); ``downsample`` when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                        nn.BatchNorm2d(cout)) if cin != cout or stride != 1 \
            else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (self.downsample(x) if self.downsample is not None else x))


class _TrackerResNet(nn.Module):
    """UVC's ``encoder_res18(uselayer=4)``: ResNet-18 to layer4, layer3/4 at stride 1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths = ((64, 64, 1), (64, 128, 2), (128, 256, 1), (256, 512, 1))
        for i, (cin, cout, stride) in enumerate(widths, 1):
            self.add_module(f"layer{i}", nn.Sequential(_BasicBlock(cin, cout, stride),
                                                       _BasicBlock(cout, cout, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) normalised
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, H/8, W/8)


class _ImageNetNormalize(nn.Module):
    """UVC's ``normalize``: mean and std kept as (frozen) parameters, so they are in the file."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.tensor([0.485, 0.456, 0.406]), requires_grad=False)
        self.std = nn.Parameter(torch.tensor([0.229, 0.224, 0.225]), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.view(1, 3, 1, 1)) / self.std.view(1, 3, 1, 1)


class UVCTracker(nn.Module):
    """The published tracker checkpoint's layout; ``forward`` runs the tracking features."""

    def __init__(self) -> None:
        super().__init__()
        self.gray_encoder = _TrackerResNet()
        self.rgb_encoder = UVCEncoder()  # training-only colour branch: in the file, never run
        self.decoder = UVCDecoder()  # likewise
        self.normalize = _ImageNetNormalize()

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 512, H/8, W/8) tracking features."""
        lightness = color.rgb_to_lab(rgb.float())[:, :1] / 256.0  # OpenCV 8-bit L / 256
        return self.gray_encoder(self.normalize(lightness.expand(-1, 3, -1, -1)))


def _published(role: str) -> nn.Module:
    return UVCTracker()


FAMILY = Family("uvc-tracker", {"tracker": "checkpoint_latest.pth.tar"}, channels=512,
                space=LAB, published=_published)
