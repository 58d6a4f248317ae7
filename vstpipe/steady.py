"""Inference-time consistency: AdaIN statistics smoothed over time, reset at shot cuts.

AdaIN normalises every frame by its own feature mean and std, which jitter from frame to frame
even on a still shot; that jitter is a large part of per-frame flicker. Smoothing them with an
exponential moving average gives every frame of a shot nearly the same normalisation. A cut
resets all temporal state, so one shot's look does not smear into the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import ops
from .errors import OptionError

STEADY_SMOOTHING = 0.9  # what --steady turns on (see README's results table)
_THUMB = (36, 64)  # (H, W) of the picture whose colour histogram detects cuts
_BINS = 16


@dataclass(frozen=True)
class SteadyOptions:
    smoothing: float = 0.0  # EMA weight of the past for content statistics; 0 = off
    cut_threshold: float = 0.2  # histogram distance in [0, 1] above which a frame starts a shot


def validate(opts: SteadyOptions) -> None:
    if not 0.0 <= opts.smoothing < 1.0:
        raise OptionError(f"--smooth-stats {opts.smoothing}: use a value in [0, 1)")
    if not 0.0 < opts.cut_threshold <= 1.0:
        raise OptionError(f"--cut-threshold {opts.cut_threshold}: use a value in (0, 1]")


def colour_histograms(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3 * _BINS) normalised per-channel histograms."""
    thumbs = F.interpolate(x.float(), size=_THUMB, mode="area").clamp(0, 1)
    idx = (thumbs * (_BINS - 1e-6)).long().flatten(2)  # (B, 3, N) bin of every pixel
    hist = torch.zeros(*idx.shape[:2], _BINS, device=x.device)
    hist.scatter_add_(2, idx, torch.ones_like(idx, dtype=hist.dtype))
    return (hist / idx.shape[-1]).flatten(1) / 3


class Steadier:
    """Temporal state of one render: smoothed content statistics and the last histogram."""

    def __init__(self, opts: SteadyOptions) -> None:
        self.opts = opts
        self._mean: torch.Tensor | None = None
        self._std: torch.Tensor | None = None
        self._hist: torch.Tensor | None = None
        self.cuts: list[int] = []  # frame numbers (0-based) that started a new shot

    @property
    def active(self) -> bool:
        return self.opts.smoothing > 0

    def content_stats(self, frames: torch.Tensor, feats: torch.Tensor, first_index: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame (mean, std), (B, C, 1, 1), smoothed in frame order and reset at cuts.

        frames: (B, 3, H, W) network input in [0, 1]; feats: (B, C, h, w) its features.
        """
        mean, std = ops.mean_std(feats)
        hists = colour_histograms(frames)
        out_mean, out_std = [], []
        for i in range(feats.shape[0]):  # a few frames per batch; the maths is per channel
            if self._hist is not None and \
                    ops.histogram_distance(hists[i], self._hist) > self.opts.cut_threshold:
                self._mean = self._std = None
                self.cuts.append(first_index + i)
            self._hist = hists[i]
            self._mean = ops.ema(self._mean, mean[i:i + 1], self.opts.smoothing)
            self._std = ops.ema(self._std, std[i:i + 1], self.opts.smoothing)
            out_mean.append(self._mean)
            out_std.append(self._std)
        return torch.cat(out_mean), torch.cat(out_std)
