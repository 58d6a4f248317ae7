"""The temporal methods of one render, run together: what the pipeline calls per batch.

Per batch, in order: ``shot_starts`` (cut detection, once, shared by every method), then the
statistics hooks inside the stylizer (``stats_hook``), then the blend steps on its output
(``blend``), each in registry order. A cut resets every method: each hook gets ``shot_starts``.
When no method is on (``active`` is False) the pipeline calls none of it, not even cut detection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .. import ops
from . import METHODS, TemporalOptions
from .base import Stats, TemporalMethod
from .cuts import CutDetector


class Temporal:
    """The active temporal methods of one render, with their shared cut detection."""

    def __init__(self, settings: TemporalOptions) -> None:
        created = (method.create(settings) for method in METHODS.values())
        self.methods: list[TemporalMethod] = [m for m in created if m is not None]
        self.cuts = CutDetector.create(settings)

    @classmethod
    def check(cls, settings: TemporalOptions) -> None:
        """Build every active method once: one that cannot run here (OpenCV missing for the
        flow) fails before any file is opened."""
        cls(settings)

    @property
    def active(self) -> bool:
        return bool(self.methods)

    def shot_starts(self, frames: torch.Tensor, first_index: int) -> list[bool]:
        """Which of ``frames`` (B, 3, H, W) in [0, 1] start a shot (frame ``first_index`` on)."""
        return self.cuts.shot_starts(frames, first_index)

    def stats_hook(self, shot_starts: Sequence[bool]
                   ) -> Callable[[torch.Tensor], Stats] | None:
        """For the stylizer: content features (B, C, h, w) -> the (mean, std) to normalise
        them by, through every method's statistics hook; None when no method has one."""
        hooks = [m.stats_hook for m in self.methods if m.stats_hook is not None]
        if not hooks:
            return None

        def own_stats(features: torch.Tensor) -> Stats:
            stats = ops.mean_std(features)
            for hook in hooks:
                stats = hook(stats, shot_starts)
            return stats

        return own_stats

    def blend(self, source: torch.Tensor, stylized: torch.Tensor, shot_starts: Sequence[bool]
              ) -> torch.Tensor:
        """``stylized`` (B, 3, h, w) through every method's blend step, in registry order."""
        for method in self.methods:
            if method.blend is not None:
                stylized = method.blend(source, stylized, shot_starts)
        return stylized
