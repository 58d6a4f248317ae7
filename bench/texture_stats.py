"""A colour-and-texture statistic that shares nothing with any network (bench/peer_look.py).

Both painters in the look benchmark are judged by a network's features elsewhere (the style
distance of `vstpipe eval --style`); this one uses only CIELab colour and a bank of Gabor
filters, so neither model is graded by its own ruler:

- colour: the sliced Wasserstein distance between the painting's and the style image's Lab
  pixels (mean over fixed random directions of the mean absolute difference of quantiles; in
  Lab units, 0 for the same palette);
- texture: the mean absolute response of each of 16 Gabor filters (wavelengths 4, 8, 16, 32
  pixels x 4 orientations) on the lightness; the distance is the mean absolute difference of
  their logarithms (0 for the same texture energy per scale and orientation), and ``energy`` is
  the painting's total over the style's (below 1: fainter strokes than the style's);
- detail: the mean absolute Laplacian (3x3) of the lightness (L 0..100), the energy of the
  finest strokes and edges, compared among paintings at one display size;
- colour across regions: the image averaged over cells (16 on its longer side), and the spread
  of their Lab chroma, sqrt(std(a)^2 + std(b)^2): how far the colour changes from region to
  region (a painting in one hue everywhere: near 0, whatever its strokes).

Scale matters for texture: compare a painting at its network size with the style image at the
size the network saw it (its style size).
"""

from __future__ import annotations

import cv2
import numpy as np

WAVELENGTHS = (4, 8, 16, 32)
ORIENTATIONS = 4
DIRECTIONS = np.random.default_rng(0).normal(size=(32, 3))
DIRECTIONS /= np.linalg.norm(DIRECTIONS, axis=1, keepdims=True)
QUANTILES = np.linspace(0.005, 0.995, 100)


def lab(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H*W, 3) float32 CIELab (L 0..100, a and b about -128..127)."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3)


def colour_distance(rgb: np.ndarray, style: np.ndarray) -> float:
    """Sliced Wasserstein distance of the two images' Lab pixels (see the module docstring)."""
    a, b = lab(rgb) @ DIRECTIONS.T, lab(style) @ DIRECTIONS.T
    return float(np.abs(np.quantile(a, QUANTILES, axis=0)
                        - np.quantile(b, QUANTILES, axis=0)).mean())


def _gabor_bank() -> tuple[np.ndarray, ...]:
    """The 16 zero-mean Gabor kernels, one octave of bandwidth each."""
    bank = []
    for wavelength in WAVELENGTHS:
        sigma = 0.56 * wavelength
        size = int(6 * sigma) | 1
        for k in range(ORIENTATIONS):
            kernel = cv2.getGaborKernel((size, size), sigma, np.pi * k / ORIENTATIONS,
                                        wavelength, 1.0, 0, cv2.CV_32F)
            bank.append(kernel - kernel.mean())  # no response to flat areas
    return tuple(bank)


GABOR = _gabor_bank()


def gabor_energy(rgb: np.ndarray) -> np.ndarray:
    """Mean absolute response of each Gabor filter on the lightness, (16,) float64."""
    light = lab(rgb)[:, 0].reshape(rgb.shape[:2]) / 100
    return np.asarray([np.abs(cv2.filter2D(light, cv2.CV_32F, kernel,
                                           borderType=cv2.BORDER_REFLECT)).mean()
                       for kernel in GABOR], np.float64) + 1e-6


def detail(rgb: np.ndarray) -> float:
    """Mean absolute 3x3 Laplacian of the lightness (L 0..100): the finest strokes' energy."""
    light = lab(rgb)[:, 0].reshape(rgb.shape[:2])
    return float(np.abs(cv2.Laplacian(light, cv2.CV_32F, borderType=cv2.BORDER_REFLECT)).mean())


def texture_distance(mine: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    """(distance, energy ratio) of a painting's Gabor energies (``gabor_energy``) to the
    style's, computed once per style by the caller."""
    return float(np.abs(np.log(mine) - np.log(theirs)).mean()), float(mine.sum() / theirs.sum())


def fit(rgb: np.ndarray, side: int, shorter: bool = False) -> np.ndarray:
    """Resized (area or cubic) so that its longer (``shorter``: shorter) side is ``side``."""
    h, w = rgb.shape[:2]
    scale = side / (min(h, w) if shorter else max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def region_colour(rgb: np.ndarray, cells: int = 16) -> float:
    """The Lab chroma spread of the image averaged over cells (see the module docstring)."""
    h, w = rgb.shape[:2]
    size = (max(1, round(cells * w / max(h, w))), max(1, round(cells * h / max(h, w))))
    ab = lab(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))[:, 1:]
    return float(np.hypot(*ab.std(axis=0)))
