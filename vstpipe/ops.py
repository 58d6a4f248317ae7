"""Pure tensor math of AdaIN style transfer: statistics, AdaIN, strength, blends, colour.

No I/O and no state. Features are (B, C, H, W); statistics are (B, C, 1, 1).
"""

from __future__ import annotations

import torch

EPS = 1e-5  # added to the variance so flat feature maps do not divide by zero


def mean_std(feat: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over the spatial dims (population variance + eps)."""
    var, mean = torch.var_mean(feat, dim=(2, 3), keepdim=True, correction=0)
    return mean, (var + eps).sqrt()


def adain_stats(content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                own: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """AdaIN with given target statistics: std * (x - mu(x)) / sigma(x) + mean.

    ``own`` replaces the content's own (mu, sigma), e.g. by values smoothed over time.
    """
    c_mean, c_std = own if own is not None else mean_std(content)
    return std * (content - c_mean) / c_std + mean


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y)  (Huang & Belongie, eq. 8)."""
    return adain_stats(content, *mean_std(style))


def mix(content: torch.Tensor, stylized: torch.Tensor, alpha: float | torch.Tensor
        ) -> torch.Tensor:
    """Strength in feature space: (1 - alpha) C + alpha AdaIN(C, S)  (paper eq. 10)."""
    return content + alpha * (stylized - content)


def blend_stats(means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed form of the weighted mean of K AdaIN outputs (paper eq. 12).

    AdaIN is affine in the target statistics, so
    sum_k w_k (s_k n + m_k) / sum_k w_k = (sum_k w_k s_k / W) n + (sum_k w_k m_k / W)
    with n the normalised content: one AdaIN with weighted-mean statistics, whatever K is.
    means, stds: (K, 1, C, 1, 1); weights: (K,) for one blend, or (K, B) for one blend per
    frame, non-negative with positive sums. Returns (1 or B, C, 1, 1) statistics.
    """
    w = (weights / weights.sum(0, keepdim=True)).to(means.dtype)
    w = w.view(*w.shape, *([1] * (means.dim() - w.dim())))  # (K, 1|B, 1, 1, 1)
    return (w * means).sum(0), (w * stds).sum(0)


def reflect_pad(rgb: torch.Tensor, margin: int) -> torch.Tensor:
    """(B, C, H, W) with ``margin`` pixels mirrored onto every side (needs margin < H, W)."""
    if margin == 0:
        return rgb
    return torch.nn.functional.pad(rgb, (margin,) * 4, mode="reflect")


def crop(rgb: torch.Tensor, margin: int) -> torch.Tensor:
    """Inverse of reflect_pad's size change: ``margin`` pixels off every side."""
    return rgb if margin == 0 else rgb[..., margin:-margin, margin:-margin]


def luma_chroma(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) RGB -> luma (B, 1, H, W) and chroma (B, 2, H, W), full-range BT.601."""
    r, g, b = rgb.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y.unsqueeze(1), torch.stack((0.564 * (b - y), 0.713 * (r - y)), 1)


def from_luma_chroma(y: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    cb, cr = chroma.unbind(1)
    y = y.squeeze(1)
    r = y + cr / 0.713
    b = y + cb / 0.564
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return torch.stack((r, g, b), 1)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer (Gatys et al. 2016): stylized luma with the content's chroma.

    Chosen over matching the style image's colours to each frame because it is cheap, needs no
    per-frame re-encoding of the style, and cannot add frame-to-frame colour flicker.
    """
    y, _ = luma_chroma(stylized)
    _, chroma = luma_chroma(content)
    return from_luma_chroma(y, chroma)


def ema(previous: torch.Tensor | None, current: torch.Tensor, keep: float) -> torch.Tensor:
    """Exponential moving average: keep * previous + (1 - keep) * current (current if none)."""
    return current if previous is None else keep * previous + (1.0 - keep) * current


def histogram_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Half the L1 distance of two normalised histograms: 0 identical, 1 disjoint."""
    return float((a - b).abs().sum() / 2)


def guided_blend(current, warped, valid, strength: float):
    """current + strength * valid * (warped - current): the previous output, carried along the
    flow, replaces a share ``strength`` of the current one where the flow is valid.

    Works on numpy arrays and tensors alike; ``valid`` broadcasts against ``current``.
    """
    return current + (strength * valid) * (warped - current)
