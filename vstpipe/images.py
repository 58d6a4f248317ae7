"""Still images (style pictures) read with Pillow into float tensors.

Sizes are checked from the file's header, before any pixel is decoded: a small PNG can declare
gigapixels, and a 1x300 strip scaled to a 512-pixel shorter side would be 512x153600.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import MediaError
from .tensors import network_size, resize

MAX_IMAGE_PIXELS = 1 << 26  # decoded: 8192x8192, 192 MiB as RGB bytes, 768 MiB as float
MAX_STYLE_PIXELS = 2048 * 2048  # a style image at its style size, as the encoder sees it
NOT_AN_IMAGE = f"is not a readable image of at most {MAX_IMAGE_PIXELS / 1e6:.1f} megapixels"


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """``path`` opened lazily (header only) and checked against MAX_IMAGE_PIXELS; MediaError
    naming the file when it is missing, unreadable or too large, now or while decoding."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (on stderr) above its own limit; ours is lower, and a message
            # is one line, so its warning becomes the error below.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened as im:
            w, h = im.size
            if w < 1 or h < 1:
                raise MediaError(f"{path}: a {w}x{h} image has no pixels")
            if w * h > MAX_IMAGE_PIXELS:
                raise MediaError(f"{path}: a {w}x{h} image ({w * h / 1e6:.1f} megapixels); "
                                 f"vstpipe reads images of up to {MAX_IMAGE_PIXELS / 1e6:.1f} "
                                 "megapixels, scale it down first")
            yield im
    except FileNotFoundError:
        raise MediaError(f"{path}: style image not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError(f"{path}: declares more than {MAX_IMAGE_PIXELS / 1e6:.1f} megapixels; "
                         "vstpipe reads images up to that size, scale it down first") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MediaError(f"{path}: not a readable image ({exc.__class__.__name__}); "
                         "use a PNG, JPEG, WebP, TIFF or BMP file") from None


def _rgb(im: Image.Image) -> np.ndarray:
    im.load()
    return np.asarray(im.convert("RGB"))


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; MediaError naming the file when unreadable."""
    with _opened(path) as im:
        return _rgb(im)


def is_image(path: Path) -> bool:
    """Whether Pillow can read ``path`` (header and structure only, not every pixel) and it is
    within MAX_IMAGE_PIXELS."""
    try:
        with _opened(path) as im:
            im.verify()
    except MediaError:
        return False
    return True


def style_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(W, H) a ``width`` x ``height`` style image is encoded at: shorter side ``short_side``."""
    scale = short_side / min(width, height)
    return network_size(round(width * scale), round(height * scale), None)


def load_style(path: Path, short_side: int) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1], scaled so the shorter side is ``short_side``.

    Like the AdaIN reference, style statistics are taken at a fixed scale so a 4000-pixel scan
    and a 500-pixel thumbnail of the same painting give the same brush-stroke size. The scaled
    size is checked against MAX_STYLE_PIXELS before anything is decoded.
    """
    with _opened(path) as im:
        w, h = im.size
        size = style_size(w, h, short_side)
        if size[0] * size[1] > MAX_STYLE_PIXELS:
            raise MediaError(f"{path}: a {w}x{h} image at style size {short_side} would be "
                             f"{size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.1f} megapixels); "
                             f"style images are limited to {MAX_STYLE_PIXELS / 1e6:.1f} "
                             "megapixels at their style size: crop it closer to square or "
                             "lower the style size")
        rgb = _rgb(im)
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float().div_(255.0)
    return resize(x, size)
