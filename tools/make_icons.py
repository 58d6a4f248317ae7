"""Make the shipped effects' OpenFX icons (plugins/*.png, 128x128 RGBA), as `vstpipe ofx bundle`
copies them into the bundle. Run from the repository root: python tools/make_icons.py"""

from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128


def stylize() -> Image.Image:
    """The vangogh preset's style image (public domain), its centre as a rounded square."""
    art = Image.open(ROOT / "presets" / "starry_night.jpg").convert("RGB")
    side = min(art.size)
    left, top = (art.width - side) // 2, (art.height - side) // 2
    square = art.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.LANCZOS)
    return _rounded(np.asarray(square))


def echo() -> Image.Image:
    """Three discs fading left to right: a trail."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    rgb = np.zeros((SIZE, SIZE, 3))
    rgb[...] = (0.12, 0.14, 0.2)
    for i, cx in enumerate((40, 64, 88)):
        inside = (x - cx) ** 2 + (y - 64) ** 2 < 22 ** 2
        rgb[inside] = np.array((0.95, 0.75, 0.25)) * (0.35 + 0.325 * i)
    return _rounded((rgb * 255).round().astype(np.uint8))


def _rounded(rgb: np.ndarray, radius: int = 18) -> Image.Image:
    y, x = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    cx = np.clip(x, radius, SIZE - radius)
    cy = np.clip(y, radius, SIZE - radius)
    alpha = np.clip(radius + 0.5 - np.hypot(x - cx, y - cy), 0, 1)
    return Image.fromarray(np.dstack([rgb, (alpha * 255).round().astype(np.uint8)]), "RGBA")


if __name__ == "__main__":
    stylize().save(ROOT / "plugins" / "stylize.png")
    echo().save(ROOT / "plugins" / "echo.png")
