"""Still images (style pictures) read with Pillow into float tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import MediaError
from .tensors import network_size, resize


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; MediaError naming the file when unreadable."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise MediaError(f"{path}: style image not found") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise MediaError(f"{path}: not a readable image ({exc.__class__.__name__}); "
                         "use a PNG, JPEG, WebP, TIFF or BMP file") from None


def is_image(path: Path) -> bool:
    """Whether Pillow can read ``path`` (header and structure only, not every pixel)."""
    try:
        with Image.open(path) as im:
            im.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return False
    return True


def load_style(path: Path, short_side: int) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1], scaled so the shorter side is ``short_side``.

    Like the AdaIN reference, style statistics are taken at a fixed scale so a 4000-pixel scan
    and a 500-pixel thumbnail of the same painting give the same brush-stroke size.
    """
    rgb = load_rgb(path)
    h, w = rgb.shape[:2]
    scale = short_side / min(h, w)
    size = network_size(round(w * scale), round(h * scale), None)
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float().div_(255.0)
    return resize(x, size)
