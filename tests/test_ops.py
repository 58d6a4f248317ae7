import pytest
import torch

from vstpipe import ops


def _feat(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * 3 + 1


def test_mean_std_matches_direct_computation():
    x = _feat(2, 5, 7, 9)
    mean, std = ops.mean_std(x, eps=0.0)
    flat = x.flatten(2)
    torch.testing.assert_close(mean[..., 0, 0], flat.mean(-1))
    torch.testing.assert_close(std[..., 0, 0], flat.std(-1, correction=0))


def test_adain_gives_the_style_statistics():
    c, s = _feat(1, 4, 16, 16, seed=1), _feat(1, 4, 8, 8, seed=2)
    out_mean, out_std = ops.mean_std(ops.adain(c, s))
    s_mean, s_std = ops.mean_std(s)
    torch.testing.assert_close(out_mean, s_mean)
    torch.testing.assert_close(out_std, s_std, rtol=1e-5, atol=1e-5)


def test_mix_endpoints_and_midpoint():
    c, t = _feat(1, 3, 4, 4, seed=3), _feat(1, 3, 4, 4, seed=4)
    torch.testing.assert_close(ops.mix(c, t, 0.0), c)
    torch.testing.assert_close(ops.mix(c, t, 1.0), t)
    torch.testing.assert_close(ops.mix(c, t, 0.25), 0.75 * c + 0.25 * t)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_closed_form_blend_equals_naive_weighted_mean(k: int):
    content = _feat(2, 8, 12, 10, seed=10)
    styles = [_feat(1, 8, 9, 11, seed=20 + i) for i in range(k)]
    weights = torch.rand(k, dtype=torch.float64) + 0.1
    naive = sum(w * ops.adain(content, s) for w, s in zip(weights, styles)) / weights.sum()
    stats = [ops.mean_std(s) for s in styles]
    mean, std = ops.blend_stats(torch.stack([m for m, _ in stats]),
                                torch.stack([s for _, s in stats]), weights)
    closed = ops.adain_stats(content, mean, std)
    assert (closed - naive).abs().max().item() < 1e-5


def test_blend_ignores_weight_scale():
    means, stds = _feat(2, 1, 4, 1, 1, seed=5), _feat(2, 1, 4, 1, 1, seed=6).abs()
    a = ops.blend_stats(means, stds, torch.tensor([1.0, 3.0]))
    b = ops.blend_stats(means, stds, torch.tensor([10.0, 30.0]))
    torch.testing.assert_close(a, b)


def test_preserve_color_keeps_content_chroma_and_stylized_luma():
    stylized, content = torch.rand(2, 3, 6, 6, dtype=torch.float64), torch.rand(
        2, 3, 6, 6, dtype=torch.float64)
    out = ops.preserve_color(stylized, content)
    y_out, c_out = ops.luma_chroma(out)
    y_sty, _ = ops.luma_chroma(stylized)
    _, c_con = ops.luma_chroma(content)
    torch.testing.assert_close(y_out, y_sty)
    torch.testing.assert_close(c_out, c_con)
