"""The palette stage (palette.py) and lite-palette, the family that runs it after lite-edge's
decoder."""

from __future__ import annotations

import torch

from vstpipe import color, ops, palette
from vstpipe.model import FAMILIES, build, lite_skip
from vstpipe.model.lite_edge import grow
from vstpipe.model.lite_mobilenet import LiteDecoder, LiteEncoder
from vstpipe.pipeline import StyleBank
from vstpipe.stylize import Stylizer

CPU = torch.device("cpu")


def _flat(rgb: tuple[float, float, float], h: int = 8, w: int = 8) -> torch.Tensor:
    return torch.tensor(rgb).view(1, 3, 1, 1).expand(1, 3, h, w).clone()


def _ycc_moments(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (B, 3) YCbCr mean and (B, 3, 3) covariance, by torch.cov (0..255 scale)."""
    ycc = torch.cat(ops.luma_chroma(rgb), dim=1).flatten(2) * 255
    return ycc.mean(2), torch.stack([torch.cov(x, correction=0) for x in ycc])


def _halves(left: tuple, right: tuple, h: int = 48, w: int = 96) -> torch.Tensor:
    x = torch.empty(1, 3, h, w)
    x[..., : w // 2] = torch.tensor(left).view(1, 3, 1, 1)
    x[..., w // 2:] = torch.tensor(right).view(1, 3, 1, 1)
    return x


def test_moments_and_their_blend_are_weighted_means_as_adains_statistics():
    red, blue = _flat((0.8, 0.2, 0.1)), _flat((0.1, 0.3, 0.9))
    a = palette.moments(red)
    ycc_red = torch.tensor([0.299 * 0.8 + 0.587 * 0.2 + 0.114 * 0.1, 0, 0])
    ycc_red[1:] = torch.tensor([0.564 * (0.1 - ycc_red[0]), 0.713 * (0.8 - ycc_red[0])])
    ycc_red = ycc_red * 255  # BT.601 by hand
    torch.testing.assert_close(a.mean[0], ycc_red)
    torch.testing.assert_close(a.cov[0], torch.zeros(3, 3), rtol=0, atol=1e-3)  # one colour
    torch.testing.assert_close(palette.from_ycc(palette.to_ycc(red)), red)
    # An image half red, half blue: the covariance of two colours, by hand.
    both = palette.moments(torch.cat([red, blue], dim=3))
    b = palette.moments(blue)
    d = (a.mean - b.mean)[0]
    torch.testing.assert_close(both.cov[0], torch.outer(d, d) / 4, rtol=1e-4, atol=1e-3)
    # Blends: weighted means of the means and of the covariances, per frame with (K, B).
    means, covs = torch.cat([a.mean, both.mean]), torch.cat([a.cov, both.cov])
    got = palette.blend(means, covs, torch.tensor([3.0, 1.0]))
    torch.testing.assert_close(got.mean, (3 * a.mean + both.mean) / 4)
    torch.testing.assert_close(got.cov, both.cov / 4)
    per_frame = palette.blend(means, covs, torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    torch.testing.assert_close(per_frame.mean, means)
    torch.testing.assert_close(per_frame.cov, covs)


def test_the_transfer_matrix_takes_one_covariance_to_the_other():
    torch.manual_seed(0)
    q = torch.randn(2, 3, 3)
    cov_x = q @ q.transpose(1, 2) + torch.eye(3)
    r = torch.randn(2, 3, 3)
    cov_y = r @ r.transpose(1, 2) * 0.5 + torch.eye(3)
    m = palette.transfer_matrix(cov_x, cov_y)
    if torch.linalg.eigvalsh(m).max() < palette.MAX_GAIN:  # uncapped: exact
        torch.testing.assert_close(m @ cov_x @ m.transpose(1, 2), cov_y, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(m, m.transpose(1, 2))  # symmetric: no rotation of hues
    torch.testing.assert_close(palette.transfer_matrix(cov_x, cov_x),
                               torch.eye(3).expand(2, 3, 3), rtol=1e-4, atol=1e-4)
    # A direction the painting does not vary in is stretched by at most MAX_GAIN.
    thin = torch.diag(torch.tensor([100.0, 1.0, 1.0])).unsqueeze(0)
    wide = torch.diag(torch.tensor([100.0, 400.0, 400.0])).unsqueeze(0)
    gains = torch.linalg.eigvalsh(palette.transfer_matrix(thin, wide))
    torch.testing.assert_close(gains, torch.tensor([[1.0, 4.0, 4.0]]), rtol=1e-4, atol=1e-4)


def test_regions_are_the_blurred_colour_less_its_mean():
    flat = palette.to_ycc(_flat((0.3, 0.6, 0.2), 40, 40))[:, 1:]
    assert palette.regions(flat).abs().max() < 1e-3  # one colour: no region stands out
    two = palette.to_ycc(_halves((0.2, 0.7, 0.2), (0.8, 0.2, 0.2)))[:, 1:]
    got = palette.regions(two)
    assert got.shape == two.shape and abs(float(got.mean())) < 1e-3
    # Far from the border the halves keep their colour's difference; at it they blend.
    left, right = got[..., 4], got[..., -5]
    torch.testing.assert_close(right - left, (two[..., -5] - two[..., 4]), rtol=0, atol=0.5)
    middle = got[..., 46:50].mean(-1)
    assert float((middle - (left + right) / 2).abs().max()) < 0.25 * float((right - left).abs().max())


def test_the_painting_takes_the_style_images_colour_mean_and_covariance():
    torch.manual_seed(1)
    painting = 0.3 + 0.4 * torch.rand(2, 3, 40, 60)
    frame = torch.rand(2, 3, 40, 60)
    style = 0.2 + 0.6 * torch.rand(1, 3, 32, 32)
    target = palette.moments(style)
    out = palette.paint(painting, frame, target, palette.Palette(carry=1.0))
    assert out.shape == painting.shape
    mean, cov = _ycc_moments(out)
    want_mean, want_cov = _ycc_moments(style)
    for b in range(2):
        torch.testing.assert_close(mean[b], want_mean[0], rtol=0, atol=0.05)
        torch.testing.assert_close(cov[b], want_cov[0], rtol=0.03, atol=1.0)


def test_without_tones_the_lightness_stays_and_the_chroma_takes_the_styles():
    torch.manual_seed(4)
    painting = 0.3 + 0.4 * torch.rand(1, 3, 40, 60)
    frame = torch.rand(1, 3, 40, 60)
    style = 0.2 + 0.6 * torch.rand(1, 3, 32, 32)
    out = palette.paint(painting, frame, palette.moments(style), palette.Palette(1.0, tones=False))
    luma, _ = ops.luma_chroma(out)
    torch.testing.assert_close(luma, ops.luma_chroma(painting)[0], rtol=0, atol=1e-5)
    mean, cov = _ycc_moments(out)
    want_mean, want_cov = _ycc_moments(style)
    torch.testing.assert_close(mean[0, 1:], want_mean[0, 1:], rtol=0, atol=0.05)
    torch.testing.assert_close(cov[0, 1:, 1:], want_cov[0, 1:, 1:], rtol=0.03, atol=1.0)


def test_one_hue_becomes_two_where_the_frame_has_two_regions():
    """The point of the stage: a painting in one hue over a frame whose halves differ in colour
    comes out with halves of different hues of the style's palette; without the carry it
    stays one hue."""
    torch.manual_seed(2)
    strokes = 0.15 * torch.rand(1, 1, 48, 96)
    painting = torch.tensor([0.4, 0.45, 0.6]).view(1, 3, 1, 1) + strokes  # bluish, strokes in L
    frame = _halves((0.2, 0.6, 0.2), (0.7, 0.2, 0.2))  # grass | brick
    style = torch.cat([_flat((0.9, 0.8, 0.2), 32, 32), _flat((0.1, 0.2, 0.7), 32, 32)], 3)
    target = palette.moments(style)

    def halves_apart(carry: float, tones: bool) -> float:
        stage = palette.Palette(carry, tones)
        ab = color.rgb_to_lab(palette.paint(painting, frame, target, stage).clamp(0, 1))[:, 1:]
        return float((ab[..., 8:40].mean((2, 3)) - ab[..., 56:88].mean((2, 3))).norm())

    for tones in (True, False):
        assert halves_apart(0.0, tones) < 3.0
        assert halves_apart(1.0, tones) > 30.0


def _lite_edge_states(seed: int) -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    return {"encoder": LiteEncoder().state_dict(),
            "decoder": grow(lite_skip.grow(LiteDecoder().state_dict()))}


def test_lite_palette_is_lite_edge_then_the_stage_mixed_by_strength():
    states = _lite_edge_states(3)
    edge = Stylizer(build("lite-edge", states), CPU, torch.float32)
    lite = Stylizer(build("lite-palette", states), CPU, torch.float32)
    assert FAMILIES["lite-palette"].published_layout("decoder") == \
        FAMILIES["lite-edge"].published_layout("decoder")
    x, style = torch.rand(2, 3, 64, 96), torch.rand(1, 3, 64, 64)
    bank = StyleBank.encode(lite, [style])
    mean, std = bank.target(torch.ones(1))
    colour = bank.colours(torch.ones(1))
    plain = edge(x, mean, std, colour=colour)
    painted = lite(x, mean, std, colour=colour)
    torch.testing.assert_close(lite(x, mean, std), plain)  # no colours given: no stage
    stage = FAMILIES["lite-palette"].palette
    assert stage == palette.Palette(carry=2.0, tones=False)
    torch.testing.assert_close(painted, palette.paint(plain, x, colour, stage))
    half = lite(x, mean, std, alpha=torch.tensor([0.0, 0.5]).view(2, 1, 1, 1), colour=colour)
    at_zero = edge(x[:1], mean, std, alpha=0.0)
    torch.testing.assert_close(half[:1], at_zero)  # strength 0: the decoder's picture
    at_half = edge(x[1:], mean, std, alpha=0.5)
    torch.testing.assert_close(half[1:], ops.mix(at_half, palette.paint(
        at_half, x[1:], colour, stage), 0.5))
    # Each frame's result depends on that frame alone (an effect host renders in any order).
    torch.testing.assert_close(lite(x[1:], mean, std, colour=colour), painted[1:])
