"""Shot-cut detection, shared by every temporal method: a cut resets them all.

A frame starts a new shot when the colour histogram of a thumbnail moves further from the
previous frame's than ``cut_threshold`` (half the L1 distance: 0 identical, 1 disjoint), so one
shot's smoothed statistics or blended frames never smear into the next.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import ops
from .base import Option, Range, Settings

_THUMB = (36, 64)  # (H, W) of the picture whose colour histogram detects cuts
_BINS = 16


def colour_histograms(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3 * _BINS) normalised per-channel histograms."""
    thumbs = F.interpolate(x.float(), size=_THUMB, mode="area").clamp(0, 1)
    idx = (thumbs * (_BINS - 1e-6)).long().flatten(2)  # (B, 3, N) bin of every pixel
    hist = torch.zeros(*idx.shape[:2], _BINS, device=x.device)
    hist.scatter_add_(2, idx, torch.ones_like(idx, dtype=hist.dtype))
    return (hist / idx.shape[-1]).flatten(1) / 3


class CutDetector:
    """Which frames start a shot; the first frame a detector sees always does."""

    options = (
        Option("cut_threshold", float, Range(0.0, 1.0, low_open=True), 0.2,
               help="Colour-histogram distance that counts as a shot cut (resets smoothing); "
                    "default 0.2 or the preset's.",
               hint="shot-cut sensitivity"),
    )

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._hist: torch.Tensor | None = None  # the previous frame's histogram
        self.cuts: list[int] = []  # frame numbers (0-based) that started a new shot

    @classmethod
    def create(cls, settings: Settings) -> CutDetector:
        return cls(settings["cut_threshold"])

    def shot_starts(self, frames: torch.Tensor, first_index: int) -> list[bool]:
        """Which of ``frames`` (B, 3, H, W) in [0, 1] start a new shot; records them in cuts.

        ``first_index`` is the number of the batch's first frame in the render."""
        starts = []
        for i, hist in enumerate(colour_histograms(frames)):
            cut = self._hist is not None and \
                ops.histogram_distance(hist, self._hist) > self.threshold
            if cut:
                self.cuts.append(first_index + i)
            starts.append(cut or self._hist is None)
            self._hist = hist
        return starts
