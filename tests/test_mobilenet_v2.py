"""MobileNetV2 trunk of Magenta's style predictor: layout, taps, TensorFlow 'SAME' padding."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from vstpipe.errors import ModelError
from vstpipe.model.mobilenet_v2 import (
    TAP_CHANNELS,
    TAP_STRIDE,
    TAPS,
    MobileNetV2,
    SameConv2d,
    magenta_scopes,
    same_pad,
    state_for,
)

# A few entries of the layout tools/convert_magenta.py writes (its keys and shapes come from
# magenta_scopes and the module itself, so these pin the module to Magenta's graph).
LAYOUT = {
    "Conv.weight": (32, 3, 3, 3),
    "expanded_conv.depthwise.weight": (32, 1, 3, 3),
    "expanded_conv.project.weight": (16, 32, 1, 1),
    "expanded_conv_3.expand.weight": (144, 24, 1, 1),
    "expanded_conv_3.depthwise.weight": (144, 1, 3, 3),
    "expanded_conv_3.depthwise.bias": (144,),
    "expanded_conv_16.project.weight": (320, 960, 1, 1),
    "Conv_1.weight": (1280, 320, 1, 1),
    "mobilenet_conv.weight": (100, 1280, 1, 1),
    "mobilenet_conv.bias": (100,),
}


@pytest.fixture(scope="module")
def net() -> MobileNetV2:
    torch.manual_seed(0)
    return MobileNetV2(style_head=True).eval()


def test_state_dict_is_the_converters_layout(net: MobileNetV2) -> None:
    state = net.state_dict()
    scopes = magenta_scopes(net)
    assert set(state) == {f"{path}.{p}" for path in scopes for p in ("weight", "bias")}
    assert len(set(scopes.values())) == len(scopes)  # one graph convolution per layer
    assert scopes["expanded_conv_3.depthwise"] == "MobilenetV2/expanded_conv_3/depthwise"
    assert scopes["mobilenet_conv"] == "mobilenet_conv/Conv"
    for key, shape in LAYOUT.items():
        assert tuple(state[key].shape) == shape, key
    assert len(state) == 106
    assert sum(t.numel() for t in state.values()) == 2_334_916


def test_taps_shapes_and_strides_on_a_wide_frame(net: MobileNetV2) -> None:
    rgb = torch.rand(1, 3, 272, 640)
    with torch.inference_mode():
        feats = net.features(rgb, TAPS)
    assert list(feats) == list(TAPS)
    for name, x in feats.items():
        s = TAP_STRIDE[name]
        assert tuple(x.shape) == (1, TAP_CHANNELS[name], math.ceil(272 / s), math.ceil(640 / s))
    assert TAP_STRIDE["expanded_conv_5"] == 8 and TAP_CHANNELS["expanded_conv_5"] == 32
    assert TAP_STRIDE["Conv_1"] == 32 and TAP_CHANNELS["Conv_1"] == 1280


def test_odd_size_and_style_vector(net: MobileNetV2) -> None:
    rgb = torch.rand(2, 3, 97, 131)
    with torch.inference_mode():
        top = net(rgb)
        vec = net.style_vector(rgb)
    assert tuple(top.shape) == (2, 1280, 4, 5)  # ceil(97 / 32), ceil(131 / 32)
    assert tuple(vec.shape) == (2, 100)


@pytest.mark.parametrize(("side", "kernel", "stride", "pads"), [
    (256, 3, 2, (0, 1)), (17, 3, 2, (1, 1)), (97, 3, 2, (1, 1)), (1, 3, 2, (1, 1)),
    (8, 3, 1, (1, 1)), (8, 1, 1, (0, 0)),
])
def test_same_pad_is_tensorflows(side: int, kernel: int, stride: int,
                                 pads: tuple[int, int]) -> None:
    assert same_pad(side, kernel, stride) == pads


def test_stride_two_pads_after_an_even_side_and_both_sides_of_an_odd_one() -> None:
    conv = SameConv2d(1, 1, 3, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
        even = conv(torch.ones(1, 1, 6, 6))[0, 0]  # pads (0, 1): the first window is whole
        odd = conv(torch.ones(1, 1, 7, 7))[0, 0]  # pads (1, 1): both corners lose a row, a column
    assert tuple(even.shape) == (3, 3) and tuple(odd.shape) == (4, 4)
    assert even[0, 0] == 9 and even[-1, -1] == 4
    assert odd[0, 0] == 4 and odd[-1, -1] == 4


def test_cut_trunk_holds_a_subset_and_gives_the_same_tap(net: MobileNetV2) -> None:
    cut = MobileNetV2(upto="expanded_conv_5").eval()
    assert set(cut.state_dict()) < set(net.state_dict())
    cut.load_state_dict(state_for(net.state_dict(), cut))
    rgb = torch.rand(1, 3, 40, 56)
    with torch.inference_mode():
        ref = net.features(rgb, "expanded_conv_5")["expanded_conv_5"]
        torch.testing.assert_close(cut(rgb), ref)


def test_channels_last_and_bf16_run(net: MobileNetV2) -> None:
    rgb = torch.rand(1, 3, 64, 80)
    with torch.inference_mode():
        ref = net.features(rgb, "expanded_conv_2")["expanded_conv_2"]
        last = net.to(memory_format=torch.channels_last).features(
            rgb.contiguous(memory_format=torch.channels_last), "expanded_conv_2")
        low = MobileNetV2(upto="expanded_conv_2").eval()
        low.load_state_dict(state_for(net.state_dict(), low))
        half = low.to(torch.bfloat16)(rgb.to(torch.bfloat16)).float()
    net.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(last["expanded_conv_2"], ref, rtol=1e-4, atol=1e-4)
    assert F.cosine_similarity(half.flatten(), ref.flatten(), dim=0) > 0.99


def test_unknown_tap_and_headless_vector_are_model_errors(net: MobileNetV2) -> None:
    with pytest.raises(ModelError, match="'layer_19' is not in this trunk; expected one of Conv"):
        net.features(torch.rand(1, 3, 32, 32), "layer_19")
    with pytest.raises(ModelError, match="expanded_conv_5"):
        MobileNetV2(upto="expanded_conv_5").features(torch.rand(1, 3, 32, 32), "expanded_conv_6")
    with pytest.raises(ModelError, match="whole trunk"):
        MobileNetV2(upto="expanded_conv_5", style_head=True)
    with pytest.raises(ModelError, match="no style head"):
        MobileNetV2(upto="expanded_conv_5").style_vector(torch.rand(1, 3, 32, 32))
