"""Inference-time consistency: smoothed AdaIN statistics, flow-guided blending, shot cuts.

AdaIN normalises every frame by its own feature mean and std, which jitter from frame to frame
even on a still shot; smoothing them with an exponential moving average gives every frame of a
shot nearly the same normalisation. Flow-guided blending goes further: the previous output
frame, warped onto the current one along the optical flow of the *source* frames, replaces a
share ``flow_blend`` of the current output wherever the flow is trustworthy (the occlusion test
of flow.py), so textures stay put on surfaces they belong to. A shot cut resets all temporal
state, so one shot's look does not smear into the next.

Memory is bounded: the state is one set of statistics, one colour histogram, and one previous
frame (grey source and output) at the network's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import ops
from .errors import OptionError
from .flow import DisFlow, cv2_module, occlusion_mask, to_gray8, warp

# What --steady turns on; chosen from the measurements in README's results table.
STEADY_SMOOTHING = 0.9
STEADY_FLOW_BLEND = 0.8
_THUMB = (36, 64)  # (H, W) of the picture whose colour histogram detects cuts
_BINS = 16


@dataclass(frozen=True)
class SteadyOptions:
    smoothing: float = 0.0  # EMA weight of the past for content statistics; 0 = off
    flow_blend: float = 0.0  # share of the flow-warped previous output kept; 0 = off
    cut_threshold: float = 0.2  # histogram distance in [0, 1] above which a frame starts a shot


def validate(opts: SteadyOptions) -> None:
    if not 0.0 <= opts.smoothing < 1.0:
        raise OptionError(f"--smooth-stats {opts.smoothing}: use a value in [0, 1)")
    if not 0.0 <= opts.flow_blend <= 1.0:
        raise OptionError(f"--flow-blend {opts.flow_blend}: use a value in [0, 1]")
    if not 0.0 < opts.cut_threshold <= 1.0:
        raise OptionError(f"--cut-threshold {opts.cut_threshold}: use a value in (0, 1]")
    if opts.flow_blend > 0:
        cv2_module()  # fail before any file is opened when OpenCV is missing


def colour_histograms(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3 * _BINS) normalised per-channel histograms."""
    thumbs = F.interpolate(x.float(), size=_THUMB, mode="area").clamp(0, 1)
    idx = (thumbs * (_BINS - 1e-6)).long().flatten(2)  # (B, 3, N) bin of every pixel
    hist = torch.zeros(*idx.shape[:2], _BINS, device=x.device)
    hist.scatter_add_(2, idx, torch.ones_like(idx, dtype=hist.dtype))
    return (hist / idx.shape[-1]).flatten(1) / 3


def _hwc(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) tensor -> (B, H, W, 3) float32 numpy on the CPU."""
    return x.detach().float().permute(0, 2, 3, 1).cpu().numpy()


class Steadier:
    """Temporal state of one render. Per batch, in order: ``shot_starts``, then the statistics
    hook ``content_stats`` (inside the stylizer), then ``blend`` on the stylized frames."""

    def __init__(self, opts: SteadyOptions) -> None:
        self.opts = opts
        self._mean: torch.Tensor | None = None
        self._std: torch.Tensor | None = None
        self._hist: torch.Tensor | None = None
        self._gray: np.ndarray | None = None  # previous source frame, uint8 luma
        self._out: np.ndarray | None = None  # previous output frame, (H, W, 3) float32
        self._flow = DisFlow() if opts.flow_blend > 0 else None
        self.cuts: list[int] = []  # frame numbers (0-based) that started a new shot

    @property
    def active(self) -> bool:
        return self.opts.smoothing > 0 or self.opts.flow_blend > 0

    def shot_starts(self, frames: torch.Tensor, first_index: int) -> list[bool]:
        """Which of ``frames`` (B, 3, H, W) in [0, 1] start a new shot; records them in cuts."""
        starts = []
        for i, hist in enumerate(colour_histograms(frames)):
            cut = self._hist is not None and \
                ops.histogram_distance(hist, self._hist) > self.opts.cut_threshold
            if cut:
                self.cuts.append(first_index + i)
            starts.append(cut or self._hist is None)
            self._hist = hist
        return starts

    def content_stats(self, feats: torch.Tensor, starts: list[bool]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame (mean, std), (B, C, 1, 1), of feats (B, C, h, w), smoothed in frame order
        and reset where ``starts``; each frame's own when smoothing is off."""
        mean, std = ops.mean_std(feats)
        if self.opts.smoothing == 0:
            return mean, std
        out_mean, out_std = [], []
        for i, start in enumerate(starts):  # a few frames per batch; the maths is per channel
            if start:
                self._mean = self._std = None
            self._mean = ops.ema(self._mean, mean[i:i + 1], self.opts.smoothing)
            self._std = ops.ema(self._std, std[i:i + 1], self.opts.smoothing)
            out_mean.append(self._mean)
            out_std.append(self._std)
        return torch.cat(out_mean), torch.cat(out_std)

    def blend(self, frames: torch.Tensor, stylized: torch.Tensor, starts: list[bool]
              ) -> torch.Tensor:
        """Flow-guided blending of ``stylized`` (B, 3, H, W) with the previous outputs.

        The flow comes from the source ``frames`` (B, 3, H, W) in [0, 1] of the same size;
        a frame that starts a shot is left as it is. Returns the blended frames in [0, 1]
        on stylized's device; ``stylized`` unchanged when blending is off.
        """
        if self._flow is None:
            return stylized
        sources, outputs = _hwc(frames), np.clip(_hwc(stylized), 0.0, 1.0)
        for i, start in enumerate(starts):
            gray = to_gray8(sources[i])
            if not start and self._gray is not None and self._out is not None:
                forward, backward = self._flow.pair(gray, self._gray)
                valid = occlusion_mask(forward, backward)[..., None].astype(np.float32)
                outputs[i] = ops.guided_blend(outputs[i], warp(self._out, forward), valid,
                                              self.opts.flow_blend)
            self._gray, self._out = gray, outputs[i]
        return torch.from_numpy(outputs).permute(0, 3, 1, 2).to(stylized.device)
