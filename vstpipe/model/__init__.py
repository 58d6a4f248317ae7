"""Model families, one file each (modules, colour space, state-dict mapping), registered here.

* ``adain_vgg19.py``: AdaIN's VGG19 encoder and decoder, RGB.
* ``uvc_lab.py``: UVC's colour autoencoder, OpenCV Lab.
* ``uvc_tracker.py``: UVC's tracker, an affinity estimator for training.
* ``lite_mobilenet.py``: Magenta's MobileNetV2 trunk and a small decoder, RGB (``lite``).
* ``lite_skip.py``: lite-mobilenet plus a finer path (1/4) for edges (``lite``).
* ``lite_edge.py``: lite-skip plus the frame's lightness at full resolution, for lines.
* ``lite_palette.py``: lite-edge's networks plus the palette stage (``palette.py``) (``lite``).
* ``mobilenet_v2.py``: that trunk as a module (Magenta's layer names, TF SAME padding).

``base.py`` says what a family is; ``net.py`` holds StyleNet, which runs any style family. To
add a family, write ``model/<name>.py`` with its modules and a ``FAMILY = Family(...)`` and add
one line to ``FAMILIES``; registry entries (``weights/registry.py``) and ``model.json`` files
then name it by its arch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from . import adain_vgg19, lite_edge, lite_mobilenet, lite_palette, lite_skip, uvc_lab, uvc_tracker
from .base import LAB, RGB, ColourSpace, Family
from .net import StyleNet
from .uvc_tracker import UVCTracker

FAMILIES: dict[str, Family] = {family.name: family for family in (
    adain_vgg19.FAMILY,
    uvc_lab.FAMILY,
    uvc_tracker.FAMILY,
    lite_mobilenet.FAMILY,
    lite_skip.FAMILY,
    lite_edge.FAMILY,
    lite_palette.FAMILY,
)}


def published_module(arch: str, role: str) -> nn.Module:
    """A module whose state_dict has exactly the published file's keys and shapes."""
    return FAMILIES[arch].published(role)


def published_layout(arch: str, role: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the published ``role`` file of ``arch`` (the full VGG19 for adain-vgg19)."""
    return FAMILIES[arch].published_layout(role)


def check_layout(arch: str, role: str, state: Mapping[str, torch.Tensor], source: str) -> None:
    """LayoutError naming the first key, shape or dtype that differs from the published file."""
    FAMILIES[arch].check_layout(role, state, source)


def build(arch: str, states: Mapping[str, Mapping[str, torch.Tensor]], name: str = ""
          ) -> StyleNet:
    """The StyleNet of ``arch`` from published, layout-checked state dicts (role -> state)."""
    return StyleNet.build(FAMILIES[arch], states, name)


__all__ = ["FAMILIES", "LAB", "RGB", "ColourSpace", "Family", "StyleNet", "UVCTracker", "build",
           "check_layout", "published_layout", "published_module"]
