"""What a model family is: its published files, the networks that run them, the colour space
they work in, and how the published state dicts map onto those networks.

A family is data plus a few builders, so a new one is one file (its modules and a ``FAMILY``)
and one line in ``model/__init__.py``; the weights registry, ``model.json`` and the layout
checks find it there by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .. import color
from ..errors import LayoutError
from ..palette import Palette


@dataclass(frozen=True)
class ColourSpace:
    """How RGB in [0, 1] becomes a network's input, and its output RGB again (float32 both)."""

    name: str
    to_net: Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) RGB -> network input
    from_net: Callable[[torch.Tensor], torch.Tensor]  # network output -> RGB, unclamped


def _unchanged(x: torch.Tensor) -> torch.Tensor:
    return x


def _lab_in(rgb: torch.Tensor) -> torch.Tensor:
    return (color.rgb_to_lab(rgb) - 128.0) / 128.0


def _lab_out(lab: torch.Tensor) -> torch.Tensor:
    return color.lab_to_rgb(lab * 128.0 + 128.0)


RGB = ColourSpace("rgb", _unchanged, _unchanged)  # RGB in [0, 1] both ways
LAB = ColourSpace("lab", _lab_in, _lab_out)  # OpenCV-style Lab scaled to [-1, 1]


def same_key(role: str, key: str) -> str | None:
    """The default state-dict mapping: the running module has the published keys."""
    return key


@dataclass(frozen=True)
class Family:
    """One model family. A style family has an ``encoder`` and a ``decoder`` to render with;
    an affinity family (a tracker, for training) has neither and is built by its user."""

    name: str  # the arch: registry entries and model.json files name the family by it
    files: Mapping[str, str]  # role ("encoder", "decoder", ...) -> published file name
    channels: int  # feature channels at the AdaIN layer (tracking features for affinity)
    space: ColourSpace  # what the networks take in and give out
    published: Callable[[str], nn.Module]  # role -> module whose state_dict is the file's layout
    encoder: Callable[[], nn.Module] | None = None  # running encoder: forward, taps
    decoder: Callable[[], nn.Module] | None = None  # running decoder: features -> pixels
    # (role, published key) -> the running module's key; None: a tensor it does not use
    state_key: Callable[[str, str], str | None] = same_key
    # Pixels of reflection added on every side of a frame before encoding and cropped after
    # decoding (a multiple of the encoder's stride): an encoder with zero padding sees the frame's
    # edge as a feature, and its decoder paints it as a frame line.
    margin: int = 0
    # Longer side the network paints at when neither --max-side nor the preset says (None: the
    # frame's own size), larger frames shrunk to it and smaller ones enlarged: for a family whose
    # strokes were trained at that scale (a face in a 176-pixel frame is a few feature cells
    # wide) and whose decoder would cost seconds a frame at full HD.
    work_side: int | None = None
    # Style images are encoded at this fraction of the look's style size (--style-size, the
    # preset's): for a family whose decoder was trained on style images that much smaller than
    # AdaIN's 512 (``vstpipe train --style-size``), so that it paints the strokes it learnt. lite
    # paints at 320 pixels with 0.5: on a 640-pixel frame, its strokes keep the proportions
    # adain-vgg19's take at full size with the style at 512.
    style_scale: float = 1.0
    # The palette stage after the decoder (palette.py): the style image's colours spread over
    # the frame's regions; None: the decoder's colours as they are.
    palette: Palette | None = None

    @property
    def kind(self) -> str:
        """``style``: an encoder + decoder to render with; ``affinity``: a tracker."""
        return "style" if self.encoder is not None and self.decoder is not None else "affinity"

    def published_state(self, role: str) -> dict[str, torch.Tensor]:
        """The published file's tensors as meta tensors: keys, shapes and dtypes, no data."""
        with torch.device("meta"):
            return self.published(role).state_dict()

    def published_layout(self, role: str) -> dict[str, tuple[int, ...]]:
        """Key -> shape of the published ``role`` file."""
        return {k: tuple(v.shape) for k, v in self.published_state(role).items()}

    def check_layout(self, role: str, state: Mapping[str, torch.Tensor], source: str) -> None:
        """Raise LayoutError naming the first key, shape or dtype that differs from the
        published layout. Integer or bool tensors where the published file has float weights
        are refused: they would load (load_state_dict casts) as weights of whole numbers or
        0/1."""
        expected = self.published_state(role)
        what = f"the {self.name} {role}"
        for key, meta in expected.items():
            if key not in state:
                raise LayoutError(f"{source}: missing key '{key}' for {what} "
                                  f"(expected {len(expected)} keys like '{next(iter(expected))}')")
            got = tuple(state[key].shape)
            if got != tuple(meta.shape):
                raise LayoutError(f"{source}: key '{key}' has shape {list(got)}, "
                                  f"expected {list(meta.shape)} for {what}")
            if meta.is_floating_point() and not state[key].is_floating_point():
                raise LayoutError(f"{source}: key '{key}' holds {state[key].dtype} values, "
                                  f"expected floating-point weights for {what}")
        extra = [k for k in state if k not in expected]
        if extra:
            raise LayoutError(f"{source}: unexpected key '{extra[0]}' for {what} "
                              f"(expected keys {next(iter(expected))} .. {list(expected)[-1]})")

    def load(self, role: str, module: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
        """Load a published, layout-checked state dict into the running ``role`` module."""
        mapped = {}
        for key, value in state.items():
            if (target := self.state_key(role, key)) is not None:
                mapped[target] = value
        module.load_state_dict(mapped)

    def unload(self, role: str, module: nn.Module) -> dict[str, torch.Tensor]:
        """The running ``role`` module's weights keyed as in the published file (the inverse
        of ``load``), e.g. to save a trained decoder that loads like the published one."""
        published = {self.state_key(role, k): k for k in self.published_state(role)}
        return {published[k]: v.detach() for k, v in module.state_dict().items()}
