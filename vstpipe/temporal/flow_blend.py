"""Flow-guided blending: the previous output, carried along the source's optical flow.

The previous output frame, warped onto the current one along the optical flow of the *source*
frames, replaces a share ``flow_blend`` of the current output wherever the flow is trustworthy
(the occlusion test of flow.py), so textures stay put on the surfaces they belong to. The mask is
feathered: eroded by FEATHER pixels, then box-blurred by as many, so the share falls to 0 over
a few pixels before each unreliable region instead of at its edge; a hard edge left visible
seams between carried and fresh paint wherever the mask had holes (Big Buck Bunny's belly as
he raises his arm). The state is one previous frame (grey source and output) at the network's
size.

Motion boundaries: the metric (evaluate.py) also refuses pixels where the flow's gradient is
large, after Ruder et al. With ``flow_across_edges`` 1 (part of --steady) the blend carries
the previous output there too wherever the forward and backward flows agree: in bikes.mp4's
pans, parallax makes much of the frame a "boundary" by that test, and repainting it fresh every
frame left most of the flicker there (README, "Steadier renders without retraining"). Occluded
and disoccluded pixels still fail the forward-backward test and stay fresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import torch

from .. import ops
from ..flow import DisFlow, cv2_module, occlusion_mask, to_gray8, warp
from .base import Option, Range, Settings, TemporalMethod


FEATHER = 2  # pixels: the mask is eroded by this, then blurred by a (2F+1)^2 box


def feathered(valid: np.ndarray) -> np.ndarray:
    """float32 (H, W) weights in [0, 1] from a boolean mask: 0 on and within FEATHER pixels
    of an invalid pixel's erosion reach, rising linearly to 1 inside valid regions."""
    cv2 = cv2_module()
    size = 2 * FEATHER + 1
    kernel = np.ones((size, size), np.uint8)
    eroded = cv2.erode(valid.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE)
    return cv2.blur(eroded.astype(np.float32), (size, size), borderType=cv2.BORDER_REPLICATE)


def _hwc(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) tensor -> (B, H, W, 3) float32 numpy on the CPU."""
    return x.detach().float().permute(0, 2, 3, 1).cpu().numpy()


class FlowBlend(TemporalMethod):
    name = "flow_blend"
    options = (
        Option("flow_blend", float, Range(0.0, 1.0), 0.0,
               help="Blend in the previous output frame warped along the source's optical "
                    "flow, where the flow is reliable; share in [0, 1].",
               hint="share of the flow-warped previous output"),
        Option("flow_across_edges", int, Range(0, 1), 0,
               help="1: carry the previous output across motion boundaries wherever the "
                    "forward and backward flows agree (--steady's); 0: repaint them fresh.",
               hint="carry across motion boundaries (1) or repaint them (0)"),
    )

    def __init__(self, strength: float, across_edges: bool = False) -> None:
        self.strength = strength  # share of the warped previous output kept, in (0, 1]
        self.across_edges = across_edges  # no motion-boundary test in the mask
        self._flow = DisFlow()  # needs OpenCV: fails here, before any file is opened
        self.reset()

    @classmethod
    def create(cls, settings: Settings) -> Self | None:
        strength = settings["flow_blend"]
        return cls(strength, bool(settings["flow_across_edges"])) if strength > 0 else None

    def reset(self) -> None:
        self._gray: np.ndarray | None = None  # previous source frame, uint8 luma
        self._out: np.ndarray | None = None  # previous output frame, (H, W, 3) float32

    def blend(self, source: torch.Tensor, stylized: torch.Tensor, shot_starts: Sequence[bool]
              ) -> torch.Tensor:
        """``stylized`` (B, 3, H, W) blended with the previous outputs, in [0, 1], on its device.

        The flow comes from ``source`` (B, 3, H, W) in [0, 1] of the same size; a frame that
        starts a shot is left as it is."""
        sources, outputs = _hwc(source), np.clip(_hwc(stylized), 0.0, 1.0)
        for i, start in enumerate(shot_starts):
            if start:
                self.reset()
            gray = to_gray8(sources[i])
            if self._gray is not None and self._out is not None:
                forward, backward = self._flow.pair(gray, self._gray)
                valid = feathered(occlusion_mask(forward, backward,
                                                 boundaries=not self.across_edges))[..., None]
                outputs[i] = ops.guided_blend(outputs[i], warp(self._out, forward), valid,
                                              self.strength)
            self._gray, self._out = gray, outputs[i]
        return torch.from_numpy(outputs).permute(0, 3, 1, 2).to(stylized.device)
