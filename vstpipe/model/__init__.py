"""Encoder/decoder networks whose state-dict layouts match the published weight files.

Two architectures:

* ``adain-vgg19``: pytorch-AdaIN (Huang & Belongie 2017; naoto0804/pytorch-AdaIN, MIT). The
  encoder file ``vgg_normalised.pth`` is the whole VGG19 conv stack as one ``nn.Sequential``
  (keys ``0.weight`` .. ``51.bias``) taking RGB in [0, 1]; we run it up to relu4_1 (index 30).
  The decoder file ``decoder.pth`` mirrors it (keys ``1.weight`` .. ``28.bias``).
* ``uvc-lab``: the colour autoencoder of UVC (Li, Liu et al. 2019; Liusifei/UVC, MIT),
  ``encoder3(reduce=True)`` / ``decoder3(reduce=True)``, working on OpenCV-style Lab in [-1, 1];
  AdaIN runs on its reduced relu3_1 features (256 channels, 1/8 resolution).

Both networks downsample by 8, so frames are fed at sizes that are multiples of 8.

One affinity estimator, for training (``vstpipe finetune --affinity uvc``):

* ``uvc-tracker``: UVC's tracker checkpoint ``weights/checkpoint_latest.pth.tar``, the model
  ``Model_switchGTfixdot_swCC_Res`` of UVC's ``libs/model.py``. Only its ``gray_encoder`` (a
  ResNet-18 without avgpool/fc whose layer3 and layer4 keep stride 1: 512 channels at 1/8) and
  ``normalize`` (ImageNet mean/std, stored as parameters) are used; the file also holds the
  frozen colour branches ``rgb_encoder`` / ``decoder`` (the uvc-lab networks), which are part
  of the layout but never run. Input: the L channel of OpenCV 8-bit Lab divided by 256, copied
  to 3 channels, then ImageNet-normalised per channel (UVC's ``(x + 1) / 2`` of ``(L - 128) /
  128``). Affinities use raw dot products of these features (UVC's ``NLM_woSoft``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .. import color
from ..errors import LayoutError

# --- adain-vgg19 ------------------------------------------------------------------------------

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


# --- uvc-lab ----------------------------------------------------------------------------------


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


# --- uvc-tracker ------------------------------------------------------------------------------


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


# --- architectures: one place that knows roles, files and colour spaces ------------------------


@dataclass(frozen=True)
class Arch:
    name: str
    files: Mapping[str, str]  # role ("encoder"/"decoder") -> published file name
    channels: int  # feature channels at the AdaIN layer (tracking features for "affinity")
    space: str  # "rgb": network input/output RGB in [0, 1]; "lab": OpenCV Lab in [-1, 1]
    kind: str = "style"  # "style": an encoder + decoder to render with; "affinity": a tracker


ARCHS: dict[str, Arch] = {
    "adain-vgg19": Arch("adain-vgg19", {"encoder": "vgg_normalised.pth", "decoder": "decoder.pth"},
                        512, "rgb"),
    "uvc-lab": Arch("uvc-lab", {"encoder": "encoder_single_gpu.pth",
                                "decoder": "decoder_single_gpu.pth"}, 256, "lab"),
    "uvc-tracker": Arch("uvc-tracker", {"tracker": "checkpoint_latest.pth.tar"}, 512, "lab",
                        kind="affinity"),
}


def published_module(arch: str, role: str) -> nn.Module:
    """A module whose state_dict has exactly the published file's keys and shapes."""
    if arch == "adain-vgg19":
        return nn.Sequential(*_vgg_layers()) if role == "encoder" else \
            nn.Sequential(*_adain_decoder_layers())
    if arch == "uvc-tracker":
        return UVCTracker()
    return UVCEncoder() if role == "encoder" else UVCDecoder()


def _published_state(arch: str, role: str) -> dict[str, torch.Tensor]:
    """The published file's tensors as meta tensors: keys, shapes and dtypes, no data."""
    with torch.device("meta"):
        return published_module(arch, role).state_dict()


def published_layout(arch: str, role: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the published ``role`` file of ``arch`` (the full VGG19 for adain-vgg19)."""
    return {k: tuple(v.shape) for k, v in _published_state(arch, role).items()}


def check_layout(arch: str, role: str, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise LayoutError naming the first key, shape or dtype that differs from the published
    layout. Integer or bool tensors where the published file has float weights are refused:
    they would load (load_state_dict casts) as weights of whole numbers or 0/1."""
    expected = _published_state(arch, role)
    for key, meta in expected.items():
        if key not in state:
            raise LayoutError(f"{source}: missing key '{key}' for the {arch} {role} "
                              f"(expected {len(expected)} keys like '{next(iter(expected))}')")
        got = tuple(state[key].shape)
        if got != tuple(meta.shape):
            raise LayoutError(f"{source}: key '{key}' has shape {list(got)}, "
                              f"expected {list(meta.shape)} for the {arch} {role}")
        if meta.is_floating_point() and not state[key].is_floating_point():
            raise LayoutError(f"{source}: key '{key}' holds {state[key].dtype} values, expected "
                              f"floating-point weights for the {arch} {role}")
    extra = [k for k in state if k not in expected]
    if extra:
        raise LayoutError(f"{source}: unexpected key '{extra[0]}' for the {arch} {role} "
                          f"(expected keys {next(iter(expected))} .. {list(expected)[-1]})")


class StyleNet(nn.Module):
    """Encoder + decoder of one architecture, with colour-space conversion at the edges.

    ``encode`` takes RGB in [0, 1] and ``decode`` returns RGB in [0, 1] (unclamped), whatever
    space the published networks work in.
    """

    def __init__(self, arch: Arch, encoder: nn.Module, decoder: nn.Module, name: str = ""
                 ) -> None:
        super().__init__()
        self.arch = arch
        self.name = name or arch.name  # the model as the user named it, for messages
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [0, 1]
        return self.encoder(self._to_net(rgb))

    def taps(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder.taps(self._to_net(rgb))

    def decode(self, feat: torch.Tensor) -> torch.Tensor:
        out = self.decoder(feat.to(self._dtype()).contiguous(memory_format=torch.channels_last))
        # Colour conversion stays in float32 whatever precision the convolutions run in.
        out = out.float()
        return color.lab_to_rgb(out * 128.0 + 128.0) if self.arch.space == "lab" else out

    def _dtype(self) -> torch.dtype:
        return next(self.decoder.parameters()).dtype

    def _to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.float()
        if self.arch.space == "lab":
            x = (color.rgb_to_lab(x) - 128.0) / 128.0
        return x.to(self._dtype()).contiguous(memory_format=torch.channels_last)


def decoder_state(net: StyleNet) -> dict[str, torch.Tensor]:
    """The decoder's weights keyed as in the published decoder file (inverse of ``build``)."""
    decoder = net.decoder.module if hasattr(net.decoder, "module") else net.decoder  # DDP
    inner = decoder.net if net.arch.name == "adain-vgg19" else decoder
    return {k: v.detach() for k, v in inner.state_dict().items()}


def build(arch_name: str, states: Mapping[str, Mapping[str, torch.Tensor]], name: str = ""
          ) -> StyleNet:
    """Rebuild the networks of ``arch_name`` from published state dicts (role -> state dict).

    The layouts must already have passed ``check_layout``. ``name``: the model's registry name
    or directory, for messages (default: the arch).
    """
    arch = ARCHS[arch_name]
    if arch_name == "adain-vgg19":
        enc, dec = VGGEncoder(), VGGDecoder()
        # The file holds the whole VGG19; keep only the layers up to relu4_1.
        prefix = {f"{i}." for i in range(_VGG_RELU4_1)}
        enc_state = {k: v for k, v in states["encoder"].items()
                     if k.split(".")[0] + "." in prefix}
        enc.net.load_state_dict(enc_state)
        dec.net.load_state_dict(states["decoder"])
    else:
        enc, dec = UVCEncoder(), UVCDecoder()
        enc.load_state_dict(states["encoder"])
        dec.load_state_dict(states["decoder"])
    net = StyleNet(arch, enc, dec, name).eval()
    net.requires_grad_(False)
    return net
