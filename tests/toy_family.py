"""A toy model family, written the way a new family is added: this one file (its modules and a
``FAMILY``) plus one line in vstpipe/model/__init__.py's FAMILIES (tests add that entry with
monkeypatch). Tiny on purpose: one strided conv down to 1/8, one conv back up."""

from __future__ import annotations

import torch
from torch import nn

from vstpipe.model import RGB, Family


class ToyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 8, stride=8), nn.ReLU())

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [0, 1]
        return self.net(rgb)  # (B, 8, H/8, W/8)

    def taps(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        return [self.forward(rgb)]  # one style layer: the AdaIN layer itself


class ToyDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Upsample(scale_factor=8, mode="nearest"),
                                 nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:  # (B, 8, h, w)
        return self.net(feat)  # (B, 3, 8h, 8w) RGB


def _published(role: str) -> nn.Module:
    """The published files hold bare Sequentials (keys ``0.weight`` ...)."""
    return ToyEncoder().net if role == "encoder" else ToyDecoder().net


def _state_key(role: str, key: str) -> str:
    return f"net.{key}"  # the running modules wrap the published Sequential as ``net``


FAMILY = Family("toy-rgb", {"encoder": "toy_encoder.pth", "decoder": "toy_decoder.pth"},
                channels=8, space=RGB, published=_published, encoder=ToyEncoder,
                decoder=ToyDecoder, state_key=_state_key)
