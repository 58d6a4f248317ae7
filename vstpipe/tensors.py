"""The one place that converts pixels: uint8/uint16/float32 frames <-> float tensors on a device."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .media import Frame

MIN_SIDE = 16  # below this the 1/8 features are 1 pixel wide and reflection padding fails


def network_size(width: int, height: int, max_side: int | None,
                 grow: bool = False) -> tuple[int, int]:
    """(W, H) the network sees: scaled so the longer side <= max_side (== max_side when
    ``grow``: a model's working size, which small frames are enlarged to), floored to
    multiples of 8.

    The encoders pool three times, so sizes that are multiples of 8 come back out unchanged.
    """
    scale = max_side / max(width, height) if max_side else 1.0
    scale = scale if grow else min(1.0, scale)
    return (max(MIN_SIDE, int(width * scale) // 8 * 8),
            max(MIN_SIDE, int(height * scale) // 8 * 8))


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, size[1], size[0]); bilinear, antialiased when shrinking."""
    if (x.shape[-1], x.shape[-2]) == size:
        return x
    shrink = size[0] < x.shape[-1] or size[1] < x.shape[-2]
    return F.interpolate(x, size=(size[1], size[0]), mode="bilinear", align_corners=False,
                         antialias=shrink)


_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}


def to_tensor(frames: Sequence[Frame], size: tuple[int, int], device: torch.device
              ) -> torch.Tensor:
    """Frames -> (B, 3, H, W) float32 in [0, 1] on ``device``, resized to ``size`` (W, H)."""
    stack = np.stack([f.rgb for f in frames])  # (B, H, W, 3)
    scale = _SCALES[stack.dtype]
    if stack.dtype == np.uint16:
        stack = stack.astype(np.int32)  # torch has no uint16 arithmetic on every device
    x = torch.from_numpy(stack).to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float()
    if scale != 1.0:
        x = x.div_(scale)
    return resize(x, size)


def to_frames(x: torch.Tensor, like: Sequence[Frame], size: tuple[int, int], depth: int
              ) -> list[Frame]:
    """(B, 3, H, W) float -> Frames of ``size`` carrying ``like``'s pts and time base untouched.

    ``depth`` 8 gives uint8 frames, 16 uint16 on the full 0..65535 scale, 32 float32 in [0, 1]
    (clamped, not rounded: float consumers get the network's output as it is).
    """
    if depth not in (8, 16, 32):
        raise ValueError(f"depth must be 8, 16 or 32, got {depth!r}")
    # Out of place: x may be an inference tensor, which cannot be updated in place out here.
    x = resize(x.float(), size).clamp(0.0, 1.0)
    if depth == 32:
        arr = x.permute(0, 2, 3, 1).cpu().numpy()
    else:
        scale = 65535.0 if depth == 16 else 255.0
        x = (x * scale).round().permute(0, 2, 3, 1)
        arr = x.to(torch.int32 if depth == 16 else torch.uint8).cpu().numpy()
        if depth == 16:
            arr = arr.astype(np.uint16)
    return [Frame(np.ascontiguousarray(a), f.pts, f.time_base) for a, f in zip(arr, like)]
