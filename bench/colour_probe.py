"""Where does lite lose the colour from region to region? Encoder, or decoder and its losses.

    python bench/colour_probe.py                      # lite and uvc-lab, the four real clips
    python bench/colour_probe.py --models lite,runs/lite-regions
    python bench/colour_probe.py --smoke              # seconds, for CI

Two measurements per model, on frames of the clips of ../shared/media at 320 pixels:
- probe: a ridge regression from the AdaIN layer's features (what the decoder is given) of
  each feature cell to the Lab chroma (a, b) of the frame averaged over that cell, fitted on
  every 6th of the first 60 frames and scored (R^2) on other frames: how much of the frame's
  colour from region to region the features still hold;
- reconstruction: the decoder given the frame's own features (no style), and the colour across
  regions (bench/texture_stats.py's region_colour) of the frame and of what comes back.
When the features hold the colour and the decoder does not give it back, the loss is the
decoder's and what trained it, not the encoder's. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import texture_stats  # noqa: E402
from mediatools import nth_frame  # noqa: E402

from vstpipe import weights  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
UVC = ROOT.parent / "shared" / "models" / "uvc-ae"
CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "tree.avi")


def _frame(clip: Path, index: int, side: int) -> np.ndarray:
    rgb = texture_stats.fit(nth_frame(clip, index), side)
    return np.ascontiguousarray(rgb[:rgb.shape[0] // 16 * 16, :rgb.shape[1] // 16 * 16])


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def _cells(net, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(features per cell (N, C), Lab chroma averaged over the same cells (N, 2))."""
    feats, chroma = [], []
    for rgb in frames:
        with torch.no_grad():
            feat = net.encode(_tensor(rgb))[0]
        lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
        ab = F.adaptive_avg_pool2d(torch.from_numpy(lab[..., 1:]).permute(2, 0, 1),
                                   feat.shape[-2:])
        feats.append(feat.flatten(1).T.numpy())
        chroma.append(ab.flatten(1).T.numpy())
    return np.concatenate(feats), np.concatenate(chroma)


def probe(net, train: list[np.ndarray], test: list[np.ndarray], ridge: float = 10.0
          ) -> np.ndarray:
    """Held-out R^2 of the ridge regression features -> (a, b), per channel (2,)."""
    (x, y), (xt, yt) = _cells(net, train), _cells(net, test)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, xt = (np.c_[(v - mean) / std, np.ones(len(v))] for v in (x, xt))
    w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)
    return 1 - ((xt @ w - yt) ** 2).sum(0) / ((yt - yt.mean(0)) ** 2).sum(0)


def reconstruction(net, rgb: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = net.decode(net.encode(_tensor(rgb))).clamp(0, 1)
    return (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lite" + (f",{UVC}" if UVC.is_dir() else ""))
    parser.add_argument("--side", type=int, default=320)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke or not MEDIA.is_dir():
            from clips import make_clip
            print("smoke: a generated clip, lite only")
            clip = make_clip(Path(tmp) / "clip.mp4", frames=4, size=(64, 48))
            clips, train_idx, test_idx, models = [clip], [0, 2], [1, 3], ["lite"]
            side = 64
        else:
            clips = [MEDIA / name for name in CLIPS]
            train_idx, test_idx = range(0, 60, 6), range(3, 60, 12)
            models, side = args.models.split(","), args.side
        train = [_frame(c, i, side) for c in clips for i in train_idx]
        test = [_frame(c, i, side) for c in clips for i in test_idx]
        shown = [_frame(c, test_idx[len(test_idx) // 2], side) for c in clips]
        print(f"{'model':<24}{'probe R^2 a / b':>18}" +
              "".join(f"{c.stem[:12] + ' src/rec':>24}" for c in clips))
        for name in models:
            net = weights.load(weights.resolve(name, offline=True))
            r2 = probe(net, train, test)
            cells = [f"{texture_stats.region_colour(rgb):>12.1f} /"
                     f"{texture_stats.region_colour(reconstruction(net, rgb)):>9.1f}"
                     for rgb in shown]
            print(f"{Path(name).name:<24}{r2[0]:>9.3f} /{r2[1]:>7.3f}{''.join(cells)}",
                  flush=True)
    print("(probe: share of the cells' chroma the AdaIN-layer features predict on held-out "
          "frames; src/rec: colour across regions of the frame / of the decoder's "
          "reconstruction from its own features)")


if __name__ == "__main__":
    main()
