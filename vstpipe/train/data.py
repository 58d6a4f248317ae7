"""Training data: DAVIS 2017 frame pairs, content images, style images.

DAVIS layout: ``ROOT/JPEGImages/480p/<sequence>/*.jpg``; the sequences listed in
``ROOT/ImageSets/2017/train.txt`` when that file exists, else every folder. A video sample is two
frames of one sequence ``gap`` frames apart, gap drawn uniformly from 1..max_gap (the paper: at
most 5, up to 10 works), with the same random crop and the same horizontal flip on both. Images
(content for the image stage, and styles) are scaled so the shorter side is ``2 * crop`` at most
(AdaIN's 512 for 256 crops) and randomly cropped. Folders are searched recursively for image
files by extension; a file that does not decode is skipped, counted in ``skipped``, and never
stops the run.

Teacher paintings (the image stage's optional teacher term): ``TEACHER/<style>/<content>.png``,
``<style>`` the style file's path under the styles folder and ``<content>`` the content file's
under the content folder, both without their suffix; each is another painter's painting of that
content with that style, at the size the content is scaled to for training (``training_size``).
A teacher sample is such a content crop, the same crop of its painting, and a crop of its style.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..errors import OptionError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MAX_GAP = 10


@dataclass(frozen=True)
class TeacherPair:
    content: Path
    style: Path
    painting: Path  # the teacher's painting of content with style


@dataclass(frozen=True)
class DavisSequence:
    name: str
    frames: tuple[Path, ...]  # in frame order


def image_files(folder: Path, what: str) -> list[Path]:
    """Every image file under ``folder`` (recursively, sorted); OptionError if none."""
    if not folder.is_dir():
        raise OptionError(f"{folder}: {what} folder not found")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                   and p.is_file())
    if not files:
        raise OptionError(f"{folder}: no images in the {what} folder (looked for "
                          f"{', '.join(IMAGE_SUFFIXES)}, recursively)")
    return files


def davis_sequences(root: Path) -> list[DavisSequence]:
    """The training sequences of a DAVIS 2017 folder, each with at least 2 frames."""
    frames_dir = root / "JPEGImages" / "480p"
    if not frames_dir.is_dir():
        raise OptionError(f"{root}: not a DAVIS folder; expected JPEGImages/480p/<sequence>/"
                          "*.jpg inside it")
    listing = root / "ImageSets" / "2017" / "train.txt"
    if listing.is_file():
        names = [n.strip() for n in listing.read_text(encoding="utf-8").splitlines() if n.strip()]
    else:
        names = sorted(p.name for p in frames_dir.iterdir() if p.is_dir())
    sequences = []
    for name in names:
        frames = tuple(sorted((frames_dir / name).glob("*.jpg")))
        if len(frames) >= 2:
            sequences.append(DavisSequence(name, frames))
    if not sequences:
        raise OptionError(f"{frames_dir}: no sequence with at least 2 .jpg frames"
                          + (f" among those listed in {listing}" if listing.is_file() else ""))
    return sequences


def teacher_pairs(teacher: Path, content: Path, styles: Path) -> list[TeacherPair]:
    """Every (content, style, painting) the ``teacher`` folder holds a painting for (module
    docstring); OptionError if the folder is missing or holds none."""
    if not teacher.is_dir():
        raise OptionError(f"{teacher}: teacher folder not found")
    contents = {p.relative_to(content).with_suffix(""): p for p in image_files(content, "content")}
    pairs = []
    for style in image_files(styles, "style"):
        folder = teacher / style.relative_to(styles).with_suffix("")
        for key, path in contents.items():
            painting = folder / key.with_suffix(".png")
            if painting.is_file():
                pairs.append(TeacherPair(path, style, painting))
    if not pairs:
        raise OptionError(f"{teacher}: no teacher paintings; expected <style>/<content>.png "
                          f"for the files of {styles} and {content}")
    return pairs


def training_size(height: int, width: int, crop: int, max_short: int | None) -> tuple[int, int]:
    """(H, W) an image is scaled to before its crop: the shorter side at least ``crop`` and at
    most ``max_short`` (None: no upper bound)."""
    short = min(height, width)
    target = max(crop, min(short, max_short)) if max_short else max(crop, short)
    if target == short:
        return height, width
    scale = target / short
    return max(crop, round(height * scale)), max(crop, round(width * scale))


def _read(path: Path) -> np.ndarray | None:
    """(H, W, 3) uint8, or None when the file does not decode."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.array(im.convert("RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return None


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


def _fit(x: torch.Tensor, crop: int, max_short: int | None) -> torch.Tensor:
    """Scale (3, H, W) so the shorter side is at least ``crop`` and at most ``max_short``."""
    size = training_size(x.shape[1], x.shape[2], crop, max_short)
    return x if size == tuple(x.shape[1:]) else _resize(x, size)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x[None], size=size, mode="bilinear", antialias=True,
                         align_corners=False)[0]


class Sampler:
    """Random samples from one rank's stream: same seed, rank and order give the same data."""

    def __init__(self, seed: int, rank: int, crop: int) -> None:
        self.rng = np.random.default_rng([seed, rank])
        self.crop = crop
        self.skipped: list[Path] = []  # files that did not decode

    def _box(self, shape: tuple[int, ...], crop: int) -> tuple[int, int]:
        return (int(self.rng.integers(0, shape[1] - crop + 1)),
                int(self.rng.integers(0, shape[2] - crop + 1)))

    def image(self, files: list[Path], short: int | None = None) -> torch.Tensor:
        """(3, c, c) from a random readable file of ``files``, scaled so its shorter side is at
        most ``short`` (default 2 * crop); c = min(crop, short)."""
        for _ in range(100):
            path = files[int(self.rng.integers(len(files)))]
            rgb = _read(path)
            if rgb is None:
                self.skipped.append(path)
                continue
            return self._crop(rgb, short)
        raise OptionError(f"100 images in a row did not decode (last: {self.skipped[-1]}); "
                          "check the folder")

    def _crop(self, rgb: np.ndarray, short: int | None) -> torch.Tensor:
        crop = self.crop if short is None else min(self.crop, short)
        x = _fit(_tensor(rgb), crop, short or 2 * crop)
        top, left = self._box(x.shape, crop)
        return x[:, top:top + crop, left:left + crop]

    def teacher(self, pairs: list[TeacherPair], style_short: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(content, painting, style), each (3, c, c): a random pair's content crop, the same
        crop of its painting (scaled to the content's training size if it is not), and a
        crop of its style image scaled as ``image`` scales styles."""
        for _ in range(100):
            pair = pairs[int(self.rng.integers(len(pairs)))]
            paths = (pair.content, pair.painting, pair.style)
            rgbs = [_read(p) for p in paths]
            bad = [p for p, rgb in zip(paths, rgbs, strict=True) if rgb is None]
            if bad:
                self.skipped.extend(bad)
                continue
            x = _fit(_tensor(rgbs[0]), self.crop, 2 * self.crop)
            y = _tensor(rgbs[1])
            if y.shape != x.shape:
                y = _resize(y, (x.shape[1], x.shape[2]))
            top, left = self._box(x.shape, self.crop)
            box = (slice(None), slice(top, top + self.crop), slice(left, left + self.crop))
            return x[box], y[box], self._crop(rgbs[2], style_short)
        raise OptionError(f"100 teacher samples in a row did not decode (last: "
                          f"{self.skipped[-1]}); check the folders")

    def pair(self, sequences: list[DavisSequence], max_gap: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two frames (3, crop, crop) of one sequence, 1..max_gap apart, same crop and flip."""
        for _ in range(100):
            seq = sequences[int(self.rng.integers(len(sequences)))]
            gap = int(self.rng.integers(1, min(max_gap, len(seq.frames) - 1) + 1))
            first = int(self.rng.integers(0, len(seq.frames) - gap))
            paths = (seq.frames[first], seq.frames[first + gap])
            rgbs = [_read(p) for p in paths]
            bad = [p for p, rgb in zip(paths, rgbs, strict=True) if rgb is None]
            if bad or rgbs[0].shape != rgbs[1].shape:
                self.skipped.extend(bad or paths[1:])
                continue
            a, b = (_fit(_tensor(rgb), self.crop, None) for rgb in rgbs)
            top, left = self._box(a.shape, self.crop)
            box = (slice(None), slice(top, top + self.crop), slice(left, left + self.crop))
            a, b = a[box], b[box]
            if self.rng.random() < 0.5:
                a, b = a.flip(-1), b.flip(-1)
            return a, b
        raise OptionError(f"100 frame pairs in a row did not decode (last: "
                          f"{self.skipped[-1]}); check the DAVIS folder")
