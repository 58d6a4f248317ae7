"""The paper's losses against hand computations on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from vstpipe import ops
from vstpipe.train import losses
from vstpipe.train.losses import AffinitySettings, LossWeights


def test_content_loss_is_the_mean_squared_difference():
    a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    b = torch.tensor([[[[1.0, 0.0], [3.0, 8.0]]]])
    assert float(losses.content_loss(a, b)) == pytest.approx((4 + 16) / 4)


def test_style_loss_is_mse_of_means_plus_mse_of_stds_summed_over_layers():
    # One layer, 2 channels of 2 values: channel means and stds by hand (population variance
    # plus ops.EPS, as ops.mean_std computes them for AdaIN).
    out = torch.tensor([[[[0.0, 2.0]], [[1.0, 1.0]]]])  # means 1, 1; var 1, 0
    sty = torch.tensor([[[[1.0, 3.0]], [[0.0, 4.0]]]])  # means 2, 2; var 1, 4
    std = lambda var: math.sqrt(var + ops.EPS)
    expected_mean = ((1 - 2) ** 2 + (1 - 2) ** 2) / 2
    expected_std = ((std(1) - std(1)) ** 2 + (std(0) - std(4)) ** 2) / 2
    one = float(losses.style_loss([out], [sty]))
    assert one == pytest.approx(expected_mean + expected_std, rel=1e-5)
    assert float(losses.style_loss([out, out], [sty, sty])) == pytest.approx(2 * one, rel=1e-6)


def test_gram_is_the_channels_co_occurrence():
    feat = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[[(1 + 4) / 2, (3 + 0) / 2], [(3 + 0) / 2, (9 + 0) / 2]]])
    torch.testing.assert_close(losses.gram(feat), expected)


def test_the_gram_term_sees_an_arrangement_the_channel_statistics_do_not():
    # Two channels with the same values, once together and once apart: every channel's mean
    # and std agree, so the style loss is ~0, but they co-occur only in the first.
    a = torch.tensor([1.0, 0.0, 1.0, 0.0])
    together = torch.stack([a, a]).view(1, 2, 2, 2)
    apart = torch.stack([a, 1 - a]).view(1, 2, 2, 2)
    assert float(losses.style_loss([together], [apart])) == pytest.approx(0, abs=1e-9)
    assert float(losses.gram_loss([together], [apart])) == pytest.approx((0.25 + 0.25) / 4)
    assert float(losses.gram_loss([apart, apart], [apart, apart])) == 0


def test_the_sliced_wasserstein_term_by_hand_and_resampled_quantiles():
    # One channel: its one direction is +1 or -1, either way the sorted differences are
    # 0, 1, 2, 3: MSE 3.5, over the style's (unbiased) variance 20 / 3.
    out = torch.tensor([3.0, 0.0, 2.0, 1.0]).view(1, 1, 2, 2)
    style = torch.tensor([6.0, 4.0, 0.0, 2.0]).view(1, 1, 2, 2)
    assert float(losses.sliced_wasserstein_loss([out], [style])) == pytest.approx(3.5 / (20 / 3))
    # A style map of 2 positions is read as its quantiles at the decoded map's 4: 0, 2, 4, 6.
    two = torch.tensor([6.0, 0.0]).view(1, 1, 1, 2)
    assert float(losses.sliced_wasserstein_loss([style], [two])) == pytest.approx(0, abs=1e-12)
    assert float(losses.sliced_wasserstein_loss([out], [two])) == pytest.approx(3.5 / (20 / 3))


def test_the_sliced_wasserstein_term_sees_two_hues_where_the_statistics_see_one():
    # A style of two colours (half red, half blue) against a painting of every pixel drawn from
    # a normal law with the style's channel means and stds: eq. 7's term is ~0, the sliced
    # Wasserstein term is not; the style's own pixels rearranged (the same palette elsewhere)
    # measure 0 whatever the directions.
    torch.manual_seed(0)
    style = torch.zeros(1, 3, 16, 16)
    style[:, 0, :, :8], style[:, 2, :, 8:] = 1.0, 1.0
    mean, std = ops.mean_std(style)
    noise = torch.randn(1, 3, 16, 16)
    one_law = mean + (noise - ops.mean_std(noise)[0]) * std / ops.mean_std(noise)[1]
    assert float(losses.style_loss([one_law], [style])) < 1e-6
    assert float(losses.sliced_wasserstein_loss([one_law], [style])) > 0.05
    shuffled = style.flatten(2)[..., torch.randperm(256)].view(1, 3, 16, 16)
    assert float(losses.sliced_wasserstein_loss([shuffled], [style])) < 1e-12
    assert float(losses.sliced_wasserstein_loss([shuffled, shuffled], [style, style])) < 1e-12


def test_the_teacher_term_weighs_every_layer_relative_to_the_teachers_scale():
    torch.manual_seed(0)
    small, large = torch.rand(2, 3, 8, 8), torch.rand(2, 16, 4, 4) * 20
    teacher = [small, large]
    assert float(losses.teacher_loss(teacher, teacher)) == 0.0
    off_small = losses.teacher_loss([small * 1.1, large], teacher)
    off_large = losses.teacher_loss([small, large * 1.1], teacher)
    torch.testing.assert_close(off_small, off_large)  # 10% off counts alike on either layer
    by_hand = ((0.1 * small) ** 2).mean() / (small ** 2).mean()
    torch.testing.assert_close(off_small, by_hand)


def test_the_teacher_stats_term_ignores_where_strokes_lie_and_weighs_layers_alike():
    torch.manual_seed(0)
    small, large = torch.rand(2, 3, 8, 8), torch.rand(2, 16, 4, 4) * 20
    teacher = [small, large]
    moved = [t.roll((1, 2), dims=(2, 3)) for t in teacher]  # the same strokes, elsewhere
    assert float(losses.teacher_stats_loss(moved, teacher)) < 1e-10
    assert float(losses.teacher_loss(moved, teacher)) > 0.1  # the features term counts it
    off_small = losses.teacher_stats_loss([small * 1.1, large], teacher)
    off_large = losses.teacher_stats_loss([small, large * 1.1], teacher)
    torch.testing.assert_close(off_small, off_large, rtol=1e-3, atol=1e-8)  # alike on either
    mean, std = ops.mean_std(small)
    by_hand = ((0.1 * mean) ** 2 + (0.1 * std) ** 2).mean() / (mean ** 2 + std ** 2).mean()
    torch.testing.assert_close(off_small, by_hand, rtol=1e-3, atol=1e-8)


def test_the_teacher_regions_term_asks_each_regions_colour_not_where_strokes_lie():
    torch.manual_seed(0)
    teacher = torch.rand(2, 3, 16, 16)
    taps = [torch.rand(2, 8, 4, 4)]  # the style layers play no part
    # Strokes moved within each 8x8 cell: every cell's mean colour is the same.
    cells = teacher.view(2, 3, 2, 8, 2, 8).permute(0, 1, 2, 4, 3, 5).reshape(2, 3, 2, 2, 64)
    shuffled = cells[..., torch.randperm(64)].view(2, 3, 2, 2, 8, 8).permute(0, 1, 2, 4, 3, 5)
    shuffled = shuffled.reshape(2, 3, 16, 16)
    assert float(losses.teacher_regions_loss([shuffled, *taps], [teacher, *taps])) < 1e-10
    # A region painted another colour counts, relative to the teacher's cell-to-cell variance.
    other = teacher.clone()
    other[:, :, :8, :8] += 0.2
    means = torch.nn.functional.avg_pool2d(teacher, 8)
    by_hand = (0.2 ** 2 / 4) / float(means.var())
    value = float(losses.teacher_regions_loss([other, *taps], [teacher, *taps]))
    assert value == pytest.approx(by_hand, rel=1e-4)


def test_temporal_loss():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    assert float(losses.temporal_loss(a, b)) == pytest.approx(0.25)


def test_affinity_is_a_column_softmax_of_dot_products():
    # Two 1-channel "frames" of 2 positions: x = (1, 2), y = (3, -1), raw dot products.
    x = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2)
    y = torch.tensor([3.0, -1.0]).view(1, 1, 1, 2)
    a = losses.affinity(x, y, normalize=False)
    # Column j: softmax over i of x_i * y_j.
    col0 = torch.softmax(torch.tensor([3.0, 6.0]), 0)
    col1 = torch.softmax(torch.tensor([-1.0, -2.0]), 0)
    torch.testing.assert_close(a[0], torch.stack([col0, col1], 1))
    torch.testing.assert_close(a.sum(1), torch.ones(1, 2))
    # Temperature divides the logits; normalisation makes them cosines (here +-1).
    hot = losses.affinity(x, y, normalize=False, temperature=2.0)
    torch.testing.assert_close(hot[0, :, 0], torch.softmax(torch.tensor([1.5, 3.0]), 0))
    unit = losses.affinity(x, y, normalize=True)
    torch.testing.assert_close(unit[0], torch.full((2, 2), 0.5))


def test_gaussian_weighting_favours_the_centre():
    g = losses.centre_weights(4, 4, sigma=0.5).view(4, 4)
    # Position (row 0, col 0) sits at (-1.5, -1.5) from the centre; half diagonal^2 = 8.
    assert float(g[0, 0]) == pytest.approx(math.exp(-(4.5 / 8) / 0.5))
    assert float(g[1, 1]) == pytest.approx(math.exp(-(0.5 / 8) / 0.5))
    assert float(g[1, 1]) == float(g.max())
    big = losses.gaussian_weighting(4, 4)
    torch.testing.assert_close(big, g.flatten()[:, None] * g.flatten()[None, :])


def test_affinity_loss_by_hand():
    a = torch.tensor([[[0.5, 0.2], [0.5, 0.8]]])
    a_hat = torch.tensor([[[0.6, 0.2], [0.4, 0.8]]])
    g = torch.tensor([[1.0, 0.5], [0.5, 0.25]])
    # (A + 0.1 I) - A_hat = [[0, 0], [0.1, 0.1]]; weighted squares: 0, 0, 0.005, 0.0025.
    assert float(losses.affinity_loss(a, a_hat, g, eps=0.1)) == pytest.approx(0.0075 / 4)


@pytest.mark.parametrize("normalize, chunk", [(True, 5), (False, 7), (True, 1024)])
def test_chunked_pair_loss_equals_the_full_matrices_and_their_gradients(normalize, chunk):
    torch.manual_seed(0)
    src_a, src_b = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)
    sty_a = torch.randn(2, 4, 3, 5, requires_grad=True)
    sty_b = torch.randn(2, 4, 3, 5, requires_grad=True)
    settings = AffinitySettings(normalize=normalize, temperature=0.5, sigma=0.7, chunk=chunk)
    chunked = losses.pair_affinity_loss(src_a, src_b, sty_a, sty_b, settings)
    full = losses.affinity_loss(
        losses.affinity(src_a, src_b, normalize, 0.5),
        losses.affinity(sty_a, sty_b, normalize, 0.5),
        losses.gaussian_weighting(3, 5, 0.7), eps=0.1)
    torch.testing.assert_close(chunked, full)
    g_chunked = torch.autograd.grad(chunked, (sty_a, sty_b))
    g_full = torch.autograd.grad(full, (sty_a, sty_b))
    for got, want in zip(g_chunked, g_full, strict=True):
        torch.testing.assert_close(got, want)


def test_affinity_loss_is_zero_only_for_the_perturbed_target():
    # A_hat = A + eps I gives zero; A_hat = A does not (eps pulls towards the identity).
    a = losses.affinity(torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2))
    g = losses.gaussian_weighting(2, 2)
    assert float(losses.affinity_loss(a, a + 0.1 * torch.eye(4), g)) == 0.0
    assert float(losses.affinity_loss(a, a, g)) > 0.0


def test_total_uses_the_paper_weights_by_default():
    terms = {"content": torch.tensor(1.0), "style": torch.tensor(2.0),
             "affinity": torch.tensor(1e-4), "temporal": torch.tensor(0.5)}
    assert float(losses.total_loss(terms, LossWeights())) == pytest.approx(1 + 6 + 1 + 5)
    only = {"content": torch.tensor(1.0), "style": torch.tensor(2.0)}
    assert float(losses.total_loss(only, LossWeights(style=1.0))) == pytest.approx(3.0)
