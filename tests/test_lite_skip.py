"""lite-skip: lite-mobilenet's AdaIN layer plus the folded 1/4 path, and a decoder grown from a
lite-mobilenet one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vstpipe import ops
from vstpipe.model import FAMILIES, build
from vstpipe.model.lite_mobilenet import CHANNELS, LiteDecoder, LiteEncoder
from vstpipe.model.lite_skip import FOLDED, SCALE, LiteSkipDecoder, grow
from vstpipe.model.mobilenet_v2 import MobileNetV2
from vstpipe.stylize import Stylizer


def _lite(seed: int) -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    return {"encoder": LiteEncoder().state_dict(), "decoder": LiteDecoder().state_dict()}


def test_the_features_are_the_adain_layer_then_the_folded_quarter_resolution_path():
    states = _lite(0)
    skip = build("lite-skip", {**states, "decoder": grow(states["decoder"])})
    lite = build("lite-mobilenet", states)
    x = torch.rand(2, 3, 64, 96)
    feat = skip.encode(x)
    assert feat.shape == (2, CHANNELS + FOLDED, 8, 12)
    torch.testing.assert_close(feat[:, :CHANNELS], lite.encode(x))
    trunk = MobileNetV2("expanded_conv_2")
    trunk.load_state_dict({k: v for k, v in states["encoder"].items()
                           if k in trunk.state_dict()})
    quarter = trunk(x)  # (2, 24, 16, 24)
    torch.testing.assert_close(F.pixel_shuffle(feat[:, CHANNELS:], 2), quarter * SCALE)
    # The style taps are lite-mobilenet's but for the last, which is the whole feature.
    for a, b in zip(skip.taps(x)[:-1], lite.taps(x)[:-1], strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(skip.taps(x)[-1], feat)


def test_a_grown_decoder_paints_exactly_what_the_lite_decoder_painted():
    states = _lite(1)
    skip = build("lite-skip", {**states, "decoder": grow(states["decoder"])})
    lite = build("lite-mobilenet", states)
    x, style = torch.rand(1, 3, 136, 160), torch.rand(1, 3, 128, 128)
    painted = skip.decode(ops.adain(skip.encode(x), skip.encode(style)))
    assert painted.shape == x.shape
    torch.testing.assert_close(painted, lite.decode(ops.adain(lite.encode(x), lite.encode(style))),
                               rtol=0, atol=1e-5)
    # Once the fine path's weights are not zero, it changes the picture.
    grown = grow(states["decoder"])
    grown["2.1.weight"][:, 96:] = 1.0
    moved = build("lite-skip", {**states, "decoder": grown})
    assert (moved.decode(moved.encode(x)) - skip.decode(skip.encode(x))).abs().max() > 1e-3


def test_the_published_decoder_layout_is_lite_mobilenets_with_one_wider_convolution():
    lite = FAMILIES["lite-mobilenet"].published_layout("decoder")
    skip = FAMILIES["lite-skip"].published_layout("decoder")
    assert lite.keys() == skip.keys()
    assert [k for k in lite if lite[k] != skip[k]] == ["2.1.weight"]
    assert skip["2.1.weight"] == (96, 120, 3, 3)
    assert FAMILIES["lite-skip"].published_layout("encoder") == \
        FAMILIES["lite-mobilenet"].published_layout("encoder")
    assert isinstance(FAMILIES["lite-skip"].published("decoder"), LiteSkipDecoder)


def test_any_frame_size_encodes_and_decodes_to_the_1_8_grid():
    """Style images and evaluated frames come at any size: an odd side at 1/4 repeats its last
    row or column, so the fine path folds onto the 1/8 grid (ceil(side / 8))."""
    states = _lite(2)
    skip = build("lite-skip", {**states, "decoder": grow(states["decoder"])})
    lite = build("lite-mobilenet", states)
    for h, w in ((180, 90), (37, 53), (64, 96)):
        x = torch.rand(1, 3, h, w)
        feat = skip.encode(x)
        assert feat.shape[-2:] == (-(-h // 8), -(-w // 8))
        torch.testing.assert_close(feat[:, :CHANNELS], lite.encode(x))
        assert skip.decode(feat).shape[-2:] == (feat.shape[-2] * 8, feat.shape[-1] * 8)


def test_style_images_are_encoded_at_half_the_style_size():
    """lite's decoder learnt its strokes from style images at 256 pixels (the bold stage's
    --style-size); a look's style size (512) is halved before its statistics are taken, and
    a full-size family's is not."""
    skip = build("lite-skip", {**_lite(3), "decoder": grow(_lite(3)["decoder"])})
    assert skip.arch.style_scale == 0.5 and FAMILIES["adain-vgg19"].style_scale == 1.0
    style = torch.rand(1, 3, 512, 768)
    stats = Stylizer(skip, torch.device("cpu"), torch.float32).style_stats(style)
    half = F.interpolate(style, size=(256, 384), mode="bilinear", align_corners=False,
                         antialias=True)
    mean, std = ops.mean_std(skip.encode(half))
    torch.testing.assert_close(stats.mean, mean)
    torch.testing.assert_close(stats.std, std)
    full_mean, _ = ops.mean_std(skip.encode(style))
    assert (full_mean - stats.mean).abs().max() > 1e-3
