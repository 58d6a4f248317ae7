"""Smoothed AdaIN statistics: an exponential moving average of the content mean and std.

AdaIN normalises every frame by its own feature mean and std, which jitter from frame to frame
even on a still shot; smoothing them over time gives every frame of a shot nearly the same
normalisation. The state is one (mean, std) pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import torch

from .. import ops
from .base import Option, Range, Settings, Stats, TemporalMethod


class SmoothStats(TemporalMethod):
    name = "smooth_stats"
    options = (
        Option("smooth_stats", float, Range(0.0, 1.0, high_open=True), 0.0,
               help="Smooth AdaIN content statistics over time, weight of the past in [0, 1).",
               hint="EMA of the content statistics"),
    )

    def __init__(self, keep: float) -> None:
        self.keep = keep  # EMA weight of the past, in (0, 1)
        self.reset()

    @classmethod
    def create(cls, settings: Settings) -> Self | None:
        keep = settings["smooth_stats"]
        return cls(keep) if keep > 0 else None

    def reset(self) -> None:
        self._mean: torch.Tensor | None = None  # (1, C, 1, 1)
        self._std: torch.Tensor | None = None

    def stats_hook(self, stats: Stats, shot_starts: Sequence[bool]) -> Stats:
        """Per-frame (mean, std), (B, C, 1, 1), smoothed in frame order, afresh at a shot."""
        mean, std = stats
        out_mean, out_std = [], []
        for i, start in enumerate(shot_starts):  # a few frames per batch; the maths is per channel
            if start:
                self.reset()
            self._mean = ops.ema(self._mean, mean[i:i + 1], self.keep)
            self._std = ops.ema(self._std, std[i:i + 1], self.keep)
            out_mean.append(self._mean)
            out_std.append(self._std)
        return torch.cat(out_mean), torch.cat(out_std)
