"""The lite-mobilenet family: Magenta's MobileNetV2 trunk as the encoder, a small decoder."""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vstpipe import ops
from vstpipe.model import FAMILIES, build
from vstpipe.model.lite_mobilenet import CHANNELS, LiteDecoder, LiteEncoder
from vstpipe.model.mobilenet_v2 import MobileNetV2


def _states(seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    return {"encoder": LiteEncoder().state_dict(), "decoder": LiteDecoder().state_dict()}


def test_the_encoder_file_is_a_slice_of_the_converted_trunk():
    """Its keys and shapes are the full trunk's (Magenta names), so the converter's output
    slices into it; the family checks the layout like any published file."""
    full = MobileNetV2(style_head=True).state_dict()
    lite = FAMILIES["lite-mobilenet"].published_layout("encoder")
    assert lite and all(tuple(full[k].shape) == shape for k, shape in lite.items())
    assert "expanded_conv_6.expand.weight" in lite and "expanded_conv_6.project.weight" not in lite
    assert sum(v.numel() for v in LiteEncoder().state_dict().values()) == 60_064


def test_taps_are_the_style_layers_and_the_last_is_the_adain_layer():
    net = build("lite-mobilenet", _states())
    x = torch.rand(2, 3, 64, 96)
    taps = net.taps(x)
    assert [tuple(t.shape[1:]) for t in taps] == [(32, 32, 48), (96, 32, 48), (144, 16, 24),
                                                   (CHANNELS, 8, 12)]
    torch.testing.assert_close(net.encode(x), taps[-1])
    # The encoder's AdaIN layer equals running the plain trunk to expanded_conv_5 and then
    # expanded_conv_6's 1x1 expansion.
    trunk = MobileNetV2("expanded_conv_5")
    trunk.load_state_dict({k: v for k, v in net.encoder.state_dict().items()
                           if not k.startswith("expanded_conv_6.")})
    torch.testing.assert_close(net.encoder.expanded_conv_6.expand(trunk(x)), taps[-1])


def test_decoder_gives_back_the_frame_size_in_rgb():
    net = build("lite-mobilenet", _states(1))
    x = torch.rand(1, 3, 272, 640)
    feat = net.encode(x)
    out = net.decode(ops.adain(feat, net.encode(torch.rand(1, 3, 128, 128))))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert sum(v.numel() for v in net.decoder.state_dict().values()) < 600_000


def test_the_stylizer_mirrors_a_margin_around_the_frame_and_crops_it_off_after_decoding():
    from vstpipe.stylize import Stylizer
    net = build("lite-mobilenet", _states(2))
    margin = net.arch.margin
    assert margin > 0 and margin % 8 == 0  # a multiple of the encoder's stride keeps the size
    content = torch.rand(2, 3, 48, 64)
    stylizer = Stylizer(net, torch.device("cpu"), torch.float32)
    stats = stylizer.style_stats(torch.rand(1, 3, 64, 64))
    out = stylizer(content, stats.mean, stats.std)
    padded = torch.nn.functional.pad(content, (margin,) * 4, mode="reflect")
    feat = net.encode(padded)
    expected = net.decode(ops.adain_stats(feat, stats.mean, stats.std))[..., margin:-margin, margin:-margin]
    assert out.shape == content.shape
    torch.testing.assert_close(out, expected)
    # A frame too small for the margin is stylized without one.
    small = torch.rand(1, 3, 16, 24)
    torch.testing.assert_close(stylizer(small, stats.mean, stats.std),
                               net.decode(ops.adain_stats(net.encode(small), stats.mean, stats.std)))



@pytest.mark.parametrize("frame, max_side, expected", [
    ((640, 272), None, (320, 136)), ((640, 272), 160, (160, 64)),
    ((640, 272), 1024, (640, 272)),
    ((176, 144), None, (320, 256)),  # a small frame is enlarged to the working size ...
    ((176, 144), 320, (176, 144)),  # ... but --max-side never enlarges
])
def test_lite_paints_at_its_working_size_unless_max_side_says_otherwise(frame, max_side,
                                                                        expected):
    """The family's work_side (320) applies, shrinking or enlarging, when neither --max-side nor
    a preset sets one; the output keeps the frame's size whatever the network saw."""
    from vstpipe import jobs
    from vstpipe.media import Frame
    from vstpipe.sessions import Sessions
    net = build("lite-mobilenet", _states(3))
    job = jobs.resolve(jobs.Request(styles=(_style_png(),), model="lite", precision="fp32",
                                    max_side=max_side))
    session = Sessions(nets={"lite": net}).session(job, frame)
    assert session.network_size == expected
    rgb = (np.random.default_rng(0).random((frame[1], frame[0], 3)) * 255).astype(np.uint8)
    (out,) = session.process([Frame(rgb, 0, Fraction(1, 25))], frame, 8)
    assert out.rgb.shape == (frame[1], frame[0], 3)


def _style_png() -> Path:
    path = Path(tempfile.mkdtemp()) / "style.png"
    Image.fromarray((np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
                    ).save(path)
    return path


def test_a_preview_tile_of_a_small_frame_paints_as_the_render_does():
    """A 176x144 frame on lite: the render enlarges it to 320 to paint; the preview tile (at the
    frame's size) shows the same pixels, not a painting at 176."""
    from vstpipe import jobs, presets
    from vstpipe.media import Frame
    from vstpipe.preview import render_tile
    from vstpipe.sessions import Sessions
    net = build("lite-mobilenet", _states(3))
    sessions = Sessions(nets={"lite": net})
    preset = presets.available()[0]["vangogh"]
    rgb = (np.random.default_rng(2).random((144, 176, 3)) * 255).astype(np.uint8)
    tile = render_tile(sessions, rgb, preset, 176, "lite")
    job = jobs.for_preset(preset, jobs.Request(device="cpu", precision="fp32", batch=1,
                                               model="lite"))
    session = sessions.session(job, (176, 144))
    assert session.network_size == (320, 256)
    (rendered,) = session.process([Frame(rgb, 0, Fraction(1))], (176, 144), 8)
    assert tile.shape == (144, 176, 3)
    np.testing.assert_array_equal(tile, rendered.rgb)
