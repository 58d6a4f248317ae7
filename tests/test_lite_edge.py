"""lite-edge: lite-skip's features plus the frame's lightness folded from full resolution, and
a decoder grown from a lite-skip one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vstpipe import ops
from vstpipe.model import FAMILIES, build, lite_skip
from vstpipe.model.lite_edge import EDGE, SCALE, LiteEdgeDecoder, grow, lightness
from vstpipe.model.lite_mobilenet import CHANNELS, LiteDecoder, LiteEncoder

SKIP = CHANNELS + lite_skip.FOLDED  # lite-skip's 288 channels


def _skip(seed: int) -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    return {"encoder": LiteEncoder().state_dict(),
            "decoder": lite_skip.grow(LiteDecoder().state_dict())}


def _nets(seed: int):
    states = _skip(seed)
    with torch.no_grad():  # lite-skip's fine path at zero would hide a wrong unfolding
        states["decoder"][lite_skip.GROWN][:, 96:] = torch.randn_like(
            states["decoder"][lite_skip.GROWN][:, 96:]) * 0.05
    return (build("lite-edge", {**states, "decoder": grow(states["decoder"])}),
            build("lite-skip", states), states)


def test_the_features_are_lite_skips_then_the_folded_lightness():
    edge, skip, _ = _nets(0)
    x = torch.rand(2, 3, 64, 96)
    feat = edge.encode(x)
    assert feat.shape == (2, SKIP + EDGE, 8, 12)
    torch.testing.assert_close(feat[:, :SKIP], skip.encode(x))
    luma = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]
    torch.testing.assert_close(F.pixel_shuffle(feat[:, SKIP:], 8), luma * SCALE)
    torch.testing.assert_close(lightness(x), luma)
    for a, b in zip(edge.taps(x)[:-1], skip.taps(x)[:-1], strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(edge.taps(x)[-1], feat)


def test_a_grown_decoder_paints_exactly_what_the_lite_skip_decoder_painted():
    edge, skip, states = _nets(1)
    x, style = torch.rand(1, 3, 136, 160), torch.rand(1, 3, 128, 128)
    painted = edge.decode(ops.adain(edge.encode(x), edge.encode(style)))
    assert painted.shape == x.shape
    torch.testing.assert_close(painted, skip.decode(ops.adain(skip.encode(x), skip.encode(style))),
                               rtol=0, atol=1e-5)
    # With the lightness weighted, a bright line across the frame shows at full resolution,
    # at its rows: the path is unfolded where it was folded.
    grown = grow(states["decoder"])
    grown["5.2.weight"][:, 64:] = 0.0
    grown["5.2.weight"][:, 64:, 1, 1] = 1.0  # the centre tap: each pixel's own lightness
    moved = build("lite-edge", {**states, "decoder": grown})
    flat = torch.full((1, 3, 64, 64), 0.5)
    line = flat.clone()
    line[:, :, 21] = 1.0
    diff = (moved.decode(moved.encode(line)) - moved.decode(moved.encode(flat))).abs()
    rows = diff.amax(dim=(0, 1, 3))
    assert int(rows.argmax()) == 21
    assert rows[21] > 10 * rows[[r for r in range(64) if abs(r - 21) > 8]].max()


def test_the_published_decoder_layout_is_lite_skips_with_one_wider_convolution():
    skip = FAMILIES["lite-skip"].published_layout("decoder")
    edge = FAMILIES["lite-edge"].published_layout("decoder")
    assert skip.keys() == edge.keys()
    assert [k for k in skip if skip[k] != edge[k]] == ["5.2.weight"]
    assert edge["5.2.weight"] == (32, 65, 3, 3)
    assert FAMILIES["lite-edge"].published_layout("encoder") == \
        FAMILIES["lite-skip"].published_layout("encoder")
    assert isinstance(FAMILIES["lite-edge"].published("decoder"), LiteEdgeDecoder)
    assert FAMILIES["lite-edge"].style_scale == FAMILIES["lite-skip"].style_scale


def test_any_frame_size_encodes_and_decodes_to_the_1_8_grid():
    edge, skip, _ = _nets(2)
    for h, w in ((180, 90), (37, 53), (64, 96)):
        x = torch.rand(1, 3, h, w)
        feat = edge.encode(x)
        assert feat.shape[-2:] == (-(-h // 8), -(-w // 8))
        torch.testing.assert_close(feat[:, :SKIP], skip.encode(x))
        assert edge.decode(feat).shape[-2:] == (feat.shape[-2] * 8, feat.shape[-1] * 8)
