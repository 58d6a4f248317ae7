"""sRGB <-> OpenCV-style 8-bit Lab in torch, differentiable (pure math, no I/O).

Matches OpenCV's ``COLOR_RGB2LAB`` on 8-bit data without its rounding: the sRGB transfer curve
is decoded, XYZ uses the D65 white (Xn 0.950456, Zn 1.088754), and the result is stored as
L* x 255 / 100, a* + 128, b* + 128, so every channel is on a 0..255 scale.
"""

from __future__ import annotations

import torch

_RGB2XYZ = ((0.412453, 0.357580, 0.180423),
            (0.212671, 0.715160, 0.072169),
            (0.019334, 0.119193, 0.950227))
_XYZ2RGB = ((3.240479, -1.53715, -0.498535),
            (-0.969256, 1.875991, 0.041556),
            (0.055648, -0.204043, 1.057311))
_WHITE = (0.950456, 1.0, 1.088754)
_T0 = 0.008856  # CIE epsilon: below it the cube root is replaced by a line
_TINY = 1e-8  # keeps pow() away from 0 so gradients stay finite


def _apply(matrix: tuple, x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(matrix, dtype=x.dtype, device=x.device)
    return torch.einsum("ij,bjhw->bihw", m, x)


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.04045, c / 12.92,
                       ((c.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.0031308, c * 12.92,
                       1.055 * c.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) sRGB in [0, 1] -> (B, 3, H, W) OpenCV Lab on the 0..255 scale."""
    xyz = _apply(_RGB2XYZ, srgb_to_linear(rgb))
    white = torch.tensor(_WHITE, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    t = xyz / white
    f = torch.where(t > _T0, t.clamp(min=_T0) ** (1 / 3), 7.787 * t + 16 / 116)
    fx, fy, fz = f.unbind(1)
    y = t[:, 1]
    lum = torch.where(y > _T0, 116 * fy - 16, 903.3 * y)
    return torch.stack((lum * 255 / 100, 500 * (fx - fy) + 128, 200 * (fy - fz) + 128), 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of ``rgb_to_lab``; the result is sRGB, unclamped (out-of-gamut values pass)."""
    lum, a, b = lab[:, 0] * 100 / 255, lab[:, 1] - 128, lab[:, 2] - 128
    fy = (lum + 16) / 116
    f = torch.stack((fy + a / 500, fy, fy - b / 200), 1)
    t = torch.where(f > 6 / 29, f ** 3, (f - 16 / 116) / 7.787)
    # OpenCV's dark branch for Y is linear in L*, matching 903.3 above.
    y = torch.where(lum > 8, t[:, 1], lum / 903.3)
    t = torch.stack((t[:, 0], y, t[:, 2]), 1)
    white = torch.tensor(_WHITE, dtype=lab.dtype, device=lab.device).view(1, 3, 1, 1)
    linear = _apply(_XYZ2RGB, t * white)
    return linear_to_srgb(linear.clamp(min=0.0))
