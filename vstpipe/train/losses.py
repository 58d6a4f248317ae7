"""The losses of the paper (Tsan 2020), as pure functions of tensors.

Shapes: features (B, C, H, W); an affinity matrix (B, N, N) with N = H * W of the features it
came from, A[b, i, j] the affinity of position i of the first frame to position j of the second.

* Content (eq. 1): MSE between the decoded image's features at the AdaIN layer and the AdaIN
  target it was decoded from (as AdaIN was trained).
* Style (eq. 7, as AdaIN's code computes it): over the style layers (relu1_1..relu4_1 or the
  encoder's equivalents), MSE of the channel means plus MSE of the channel stds.
* Affinity (eq. 6): A_ij = exp(x_i . y_j / T) / sum_k exp(x_k . y_j / T), a softmax over i for
  every column j; x, y are the two frames' features, L2-normalised over channels first when
  ``normalize`` (the default: dot products of unit vectors are bounded, so T alone sets how
  peaked A is, whatever the feature scale), raw as printed in the paper otherwise.
* Inter-frame affinity loss (eq. 8): mean(G * ((A + eps I) - A_hat)^2), A from the source pair,
  A_hat from the stylized pair, eps = 0.1. G[i, j] = g(i) g(j) with g(p) = exp(-r(p)^2 /
  (2 sigma^2)), r(p) the distance of position p from the frame centre in units of the half
  diagonal (corners at r = 1), sigma = 0.5 by default: 1 at the centre, 0.14 at the corners.
  Weighting both the source position and the target position keeps pixels that enter or
  leave at the borders from dominating (the paper's motivation).
* Temporal: MSE between the two stylized frames of a pair.
* Gram (not in the paper; off unless lambda_gram > 0): over the style layers, MSE of the Gram
  matrices F F^T / (H W) (Gatys et al. 2016), which see which features occur together, the
  arrangement that channel means and stds do not: it makes a decoder paint the style's patterns
  more boldly (README, "The lite model").
* Teacher (not in the paper; off unless lambda_teacher > 0): over the pixels and the style
  layers, MSE between the decoded image (and its features) and another painter's painting of
  the same content with the same style (and its features), relative to the latter's mean
  square (a perceptual distillation loss, Johnson et al. 2016): the decoder learns what that
  painter draws, such as outlines, where the style statistics alone do not ask for it (README,
  "The lite model"). With teacher_match "stats", the MSE of the channel means and stds instead
  (the teacher's palette and stroke energy, not where each stroke lies); with "regions", the
  MSE of the pixels averaged over 8x8 cells (which colour the teacher gives each region).
* Sliced Wasserstein (not in the paper; off unless lambda_swd > 0; Heitz et al. 2021): over the
  pixels and the style layers, each layer's features projected on as many random unit
  directions as it has channels, and the sorted projections (the quantiles of each 1-D
  distribution) compared with the style's by MSE, relative to the variance of the style's: the
  whole distribution of colours and features, so a style of several hues asks for several
  hues, where channel means and stds (eq. 7) are met by one hue between them.
  The training loop adds the pixels averaged over 8x8 cells as one more layer: the spread
  of colour from region to region.
* Total (eq. 9): sum of lambda_k * L_k, lambda = 1, 3, 10000, 10 by default (gram, teacher and
  swd 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .. import ops


@dataclass(frozen=True)
class LossWeights:
    content: float = 1.0  # lambda_1
    style: float = 3.0  # lambda_2
    affinity: float = 10000.0  # lambda_3
    temporal: float = 10.0  # lambda_4
    gram: float = 0.0  # Gram-matrix style term, not in eq. 9 (0: off)
    teacher: float = 0.0  # distance to a teacher's painting, not in eq. 9 (0: off)
    swd: float = 0.0  # sliced Wasserstein style term, not in eq. 9 (0: off)


def content_loss(decoded_feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 1: MSE between the decoded image's AdaIN-layer features and their target."""
    return F.mse_loss(decoded_feat, target)


def style_loss(decoded_feats: Sequence[torch.Tensor], style_feats: Sequence[torch.Tensor]
               ) -> torch.Tensor:
    """Eq. 7: sum over layers of MSE(channel means) + MSE(channel stds)."""
    total = decoded_feats[0].new_zeros(())
    for out, style in zip(decoded_feats, style_feats, strict=True):
        out_mean, out_std = ops.mean_std(out)
        style_mean, style_std = ops.mean_std(style)
        total = total + F.mse_loss(out_mean, style_mean.expand_as(out_mean)) + \
            F.mse_loss(out_std, style_std.expand_as(out_std))
    return total


def gram(feat: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C): F F^T / (H W), the channels' co-occurrence."""
    x = feat.flatten(2)
    return torch.bmm(x, x.transpose(1, 2)) / x.shape[-1]


def gram_loss(decoded_feats: Sequence[torch.Tensor], style_feats: Sequence[torch.Tensor]
              ) -> torch.Tensor:
    """Sum over layers of MSE(Gram(decoded), Gram(style))."""
    total = decoded_feats[0].new_zeros(())
    for out, style in zip(decoded_feats, style_feats, strict=True):
        target = gram(style)
        total = total + F.mse_loss(gram(out), target.expand(out.shape[0], -1, -1))
    return total


def sliced_wasserstein_loss(decoded_feats: Sequence[torch.Tensor],
                            style_feats: Sequence[torch.Tensor],
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """Sum over layers of the sliced Wasserstein distance between the decoded image's features
    and the style's (module docstring): C random unit directions per layer of C channels
    (fresh every call, from ``generator`` or torch's global generator), each 1-D distribution
    sorted; a style map with a different number of positions is resampled to the decoded
    one's quantiles. ``style_feats`` may have batch 1 (one style for all) or the decoded
    batch."""
    total = decoded_feats[0].new_zeros((), dtype=torch.float32)
    for out, style in zip(decoded_feats, style_feats, strict=True):
        channels = out.shape[1]
        directions = F.normalize(torch.randn(channels, channels, generator=generator,
                                             device=out.device), dim=0)  # (C, K) unit columns
        ours, theirs = (torch.einsum("bcn,ck->bkn", x.flatten(2).float(), directions)
                        .sort(dim=-1).values for x in (out, style))
        if theirs.shape[-1] != ours.shape[-1]:
            theirs = F.interpolate(theirs, size=ours.shape[-1], mode="linear",
                                   align_corners=True)
        theirs = theirs.expand_as(ours)
        total = total + F.mse_loss(ours, theirs) / theirs.var().clamp_min(1e-8)
    return total


def teacher_loss(decoded_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]
                 ) -> torch.Tensor:
    """Sum over layers (the pixels first, then the style layers) of the MSE between the decoded
    image's and the teacher's, relative to the teacher's mean square: every layer counts alike,
    the pixels and the first (edges, where a painter's lines are) as much as the ones whose
    activations are 20x larger."""
    total = decoded_feats[0].new_zeros(())
    for out, teacher in zip(decoded_feats, teacher_feats, strict=True):
        total = total + F.mse_loss(out, teacher) / teacher.pow(2).mean().clamp_min(1e-8)
    return total


def teacher_stats_loss(decoded_feats: Sequence[torch.Tensor],
                       teacher_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Like :func:`teacher_loss`, but on each layer's channel means and standard deviations
    (eq. 7's statistics) instead of its values: the teacher's palette, tones and stroke energy
    over the crop, without asking where each stroke lies, which a decoder cannot learn and
    whose best guess under MSE is an average. Each layer relative to the mean square of the
    teacher's statistics."""
    total = decoded_feats[0].new_zeros(())
    for out, teacher in zip(decoded_feats, teacher_feats, strict=True):
        (out_mean, out_std), (mean, std) = ops.mean_std(out), ops.mean_std(teacher)
        scale = (mean.pow(2) + std.pow(2)).mean().clamp_min(1e-8)
        total = total + (F.mse_loss(out_mean, mean) + F.mse_loss(out_std, std)) / scale
    return total


def teacher_regions_loss(decoded_feats: Sequence[torch.Tensor],
                         teacher_feats: Sequence[torch.Tensor], cell: int = 8) -> torch.Tensor:
    """Like :func:`teacher_loss`, but on the pixels alone, averaged over ``cell`` x ``cell``
    cells: which colour the teacher gives each region of the frame, which (unlike where each
    stroke lies) follows from the content, so MSE does not average it away. Relative to the
    variance of the teacher's cells (the colour changes from region to region), not their
    mean square, which the overall brightness would dominate."""
    ours, theirs = (F.avg_pool2d(x[0].float(), cell) for x in (decoded_feats, teacher_feats))
    return F.mse_loss(ours, theirs) / theirs.var().clamp_min(1e-8)


# --teacher-match -> the teacher term it names
TEACHER_TERMS = {"features": teacher_loss, "stats": teacher_stats_loss,
                 "regions": teacher_regions_loss}


def temporal_loss(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """MSE between the two stylized frames of a pair."""
    return F.mse_loss(first, second)


def _columns(x: torch.Tensor, y: torch.Tensor, normalize: bool, temperature: float
             ) -> torch.Tensor:
    """(B, C, N) and (B, C, M) -> (B, N, M) column-softmaxed affinities (eq. 6)."""
    if normalize:
        x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
    logits = torch.bmm(x.transpose(1, 2), y) / temperature  # (B, N, M): x_i . y_j
    return torch.softmax(logits.float(), dim=1)


def affinity(x: torch.Tensor, y: torch.Tensor, normalize: bool = True,
             temperature: float = 1.0) -> torch.Tensor:
    """Eq. 6 for feature maps x, y (B, C, H, W) -> A (B, HW, HW), every column sums to 1."""
    return _columns(x.flatten(2), y.flatten(2), normalize, temperature)


def centre_weights(height: int, width: int, sigma: float = 0.5,
                   device: torch.device | None = None) -> torch.Tensor:
    """g (H * W,): exp(-r^2 / (2 sigma^2)), r = distance from the centre / half diagonal."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5 - height / 2)
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5 - width / 2)
    r2 = (ys[:, None] ** 2 + xs[None, :] ** 2) / ((height / 2) ** 2 + (width / 2) ** 2)
    return torch.exp(-r2 / (2 * sigma**2)).flatten()


def gaussian_weighting(height: int, width: int, sigma: float = 0.5,
                       device: torch.device | None = None) -> torch.Tensor:
    """G (HW, HW) = g g^T, the weighting of eq. 8 (see the module docstring)."""
    g = centre_weights(height, width, sigma, device)
    return g[:, None] * g[None, :]


def affinity_loss(source: torch.Tensor, stylized: torch.Tensor, weighting: torch.Tensor,
                  eps: float = 0.1) -> torch.Tensor:
    """Eq. 8: mean(G * ((A + eps I) - A_hat)^2) for A (source) and A_hat (stylized)."""
    eye = torch.eye(source.shape[-1], device=source.device, dtype=source.dtype)
    return (weighting * ((source + eps * eye) - stylized) ** 2).mean()


@dataclass(frozen=True)
class AffinitySettings:
    eps: float = 0.1  # added to the target's diagonal (eq. 8)
    sigma: float = 0.5  # width of the centre weighting G, in half diagonals
    normalize: bool = True  # L2-normalise features before the dot products
    temperature: float = 1.0  # divides the dot products before the softmax
    chunk: int = 1024  # columns of A computed at a time (bounds memory on large frames)


def pair_affinity_loss(src_a: torch.Tensor, src_b: torch.Tensor, sty_a: torch.Tensor,
                       sty_b: torch.Tensor, settings: AffinitySettings = AffinitySettings()
                       ) -> torch.Tensor:
    """Eq. 8 from features (B, C, H, W) of the source pair and the stylized pair, in chunks.

    Columns of A are independent (the softmax runs down each column), so the loss is summed
    over blocks of ``chunk`` columns; each block is recomputed in the backward pass
    (activation checkpointing), so memory holds one block of A, not all (HW)^2 entries.
    Equals ``affinity_loss(affinity(src_a, src_b), affinity(sty_a, sty_b), G, eps)``.
    """
    b, _, h, w = src_a.shape
    x, y = src_a.flatten(2), src_b.flatten(2)
    x_hat, y_hat = sty_a.flatten(2), sty_b.flatten(2)
    g = centre_weights(h, w, settings.sigma, src_a.device)
    n = h * w
    total = src_a.new_zeros((), dtype=torch.float32)
    for start in range(0, n, settings.chunk):
        stop = min(start + settings.chunk, n)
        total = total + checkpoint(_block, x, y[..., start:stop], x_hat,
                                   y_hat[..., start:stop], g, start, settings,
                                   use_reentrant=False)
    return total / (b * n * n)


def _block(x: torch.Tensor, y: torch.Tensor, x_hat: torch.Tensor, y_hat: torch.Tensor,
           g: torch.Tensor, start: int, settings: AffinitySettings) -> torch.Tensor:
    """Sum over columns start..start+m of G * ((A + eps I) - A_hat)^2."""
    with torch.no_grad():
        target = _columns(x, y, settings.normalize, settings.temperature)  # (B, N, m)
        cols = torch.arange(y.shape[-1], device=y.device)
        target[:, start + cols, cols] += settings.eps
    estimate = _columns(x_hat, y_hat, settings.normalize, settings.temperature)
    weight = g[:, None] * g[None, start:start + y.shape[-1]]
    return (weight * (target - estimate) ** 2).sum()


def total_loss(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """Eq. 9: sum of lambda_k * L_k over the terms present (content, style, affinity, temporal)."""
    return sum((getattr(weights, name) * value for name, value in terms.items()),
               start=next(iter(terms.values())).new_zeros(()))
