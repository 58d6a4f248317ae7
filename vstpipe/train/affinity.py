"""Affinity backends: the networks whose features give the inter-frame affinities of eq. 8.

``uvc`` is the paper's estimator, UVC's tracker (model.UVCTracker): raw dot products of its
512-channel stride-8 features, softmax down each column, no temperature (UVC's own settings).
``encoder`` needs no extra weights: the frozen style encoder's features at one of its style
layers (default the AdaIN layer, 1/8 resolution), L2-normalised, with temperature 0.05 so the
softmax over cosine similarities is about as peaked as UVC's over raw products (unit vectors'
products lie in [-1, 1]; divided by 0.05 they span 40 nats).

Both are frozen; gradients flow through them into the stylized frames only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from .. import model, weights
from ..errors import ModelError, OptionError
from .losses import AffinitySettings

BACKENDS = ("uvc", "encoder")
UVC_SETTINGS = AffinitySettings(normalize=False, temperature=1.0)
ENCODER_SETTINGS = AffinitySettings(normalize=True, temperature=0.05)


@dataclass(frozen=True)
class AffinityChoice:
    backend: str = "uvc"  # uvc | encoder
    layer: int = -1  # encoder backend: index into the style layers (0 = relu1_1, -1 = last)
    eps: float | None = None  # None: the backend's default for each of these
    sigma: float | None = None
    normalize: bool | None = None
    temperature: float | None = None
    chunk: int = 1024


class Backend(nn.Module):
    """Frozen feature extractor for affinities, with its affinity settings."""

    def __init__(self, name: str, features: nn.Module, settings: AffinitySettings) -> None:
        super().__init__()
        self.name, self.net, self.settings = name, features, settings
        self.net.eval().requires_grad_(False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [0, 1]
        return self.net(rgb)  # (B, C, h, w)


class _EncoderTap(nn.Module):
    def __init__(self, net: model.StyleNet, layer: int) -> None:
        super().__init__()
        self.net, self.layer = net, layer

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.net.taps(rgb)[self.layer].float()


def _settings(base: AffinitySettings, choice: AffinityChoice) -> AffinitySettings:
    given = {k: v for k, v in (("eps", choice.eps), ("sigma", choice.sigma),
                               ("normalize", choice.normalize),
                               ("temperature", choice.temperature)) if v is not None}
    return replace(base, chunk=choice.chunk, **given)


def validate(choice: AffinityChoice) -> None:
    if choice.backend not in BACKENDS:
        raise OptionError(f"--affinity '{choice.backend}' is not valid; choose from "
                          f"{', '.join(BACKENDS)}")
    if not -4 <= choice.layer <= 3:
        raise OptionError(f"--affinity-layer {choice.layer}: use 0..3 (relu1_1..relu4_1) or -1")
    for name, value in (("--sigma", choice.sigma), ("--temperature", choice.temperature)):
        if value is not None and not value > 0:
            raise OptionError(f"{name} {value}: use a positive number")
    if choice.eps is not None and not choice.eps >= 0:
        raise OptionError(f"--eps {choice.eps}: use 0 or more")
    if choice.chunk < 1:
        raise OptionError(f"--affinity-chunk {choice.chunk}: use 1 or more columns")


def build(choice: AffinityChoice, style_net: model.StyleNet, *, offline: bool) -> Backend:
    """The backend ``choice`` names; for ``uvc`` the tracker weights must be installed."""
    validate(choice)
    if choice.backend == "encoder":
        return Backend("encoder", _EncoderTap(style_net, choice.layer),
                       _settings(ENCODER_SETTINGS, choice))
    try:
        resolved = weights.resolve("uvc-tracker", offline=offline)
        state = weights.load_states(resolved)["tracker"]
    except ModelError as exc:
        raise ModelError(f"--affinity uvc needs the UVC tracker weights ({exc}); get them with "
                         "`vstpipe models pull uvc-tracker` or `vstpipe models import "
                         "uvc-tracker checkpoint_latest.pth.tar`, or train with "
                         "`--affinity encoder`") from None
    tracker = model.UVCTracker()
    tracker.load_state_dict(state)
    return Backend("uvc", tracker, _settings(UVC_SETTINGS, choice))
