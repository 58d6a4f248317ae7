"""Cost of blending styles: a frame under a 3-style keyframed blend vs a frame with one style.

    python bench/blend_bench.py            # 640x272 frames, 12 rounds
    python bench/blend_bench.py --smoke    # a few seconds, for CI

The closed-form blend (paper eq. 12) mixes the styles' channel statistics, so the network runs
once per frame whatever the number of styles; this measures that promise. Prints a table and the
ratio measured in the same run; asserts nothing about absolute times.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes import random_state

from vstpipe import model
from vstpipe.images import load_style
from vstpipe.keyframes import Keyframe, Timeline
from vstpipe.pipeline import StyleBank, frame_looks
from vstpipe.stylize import Stylizer


def _styles(folder: Path, k: int) -> list[Path]:
    paths = []
    for i in range(k):
        rng = np.random.default_rng(i)
        paths.append(folder / f"style{i}.png")
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def _timeline(paths: list[Path]) -> Timeline:
    """Weights that change every frame, so nothing can be cached across frames."""
    k = len(paths)
    frames = [Keyframe(float(i), tuple(np.roll(np.eye(k)[0] * 0.5 + 0.5 / k, i)), 1.0, "linear")
              for i in range(4)]
    return Timeline(tuple(paths), tuple(frames))


def per_frame_seconds(stylizer: Stylizer, styles: list[Path], x: torch.Tensor, rounds: int
                      ) -> list[float]:
    timeline = _timeline(styles)
    bank = StyleBank.encode(stylizer, [load_style(p, 256) for p in styles])
    out = []
    for r in range(rounds):
        start = time.perf_counter()
        weights, alpha = frame_looks(timeline, [0.37 * r])
        stylizer(x, *bank.target(weights), alpha)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rounds", type=int, default=12)
    args = ap.parse_args()
    size, rounds = ((64, 48), 3) if args.smoke else ((640, 272), args.rounds)
    net = model.build("adain-vgg19", {r: random_state("adain-vgg19", r, i)
                                      for i, r in enumerate(("encoder", "decoder"))})
    stylizer = Stylizer(net, torch.device("cpu"), torch.bfloat16)
    x = torch.rand(1, 3, size[1], size[0])
    with tempfile.TemporaryDirectory() as tmp:
        paths = _styles(Path(tmp), 3)
        per_frame_seconds(stylizer, paths[:1], x, 1)  # warm-up
        one, three = [], []
        for _ in range(rounds):  # interleaved, so machine noise hits both alike
            one += per_frame_seconds(stylizer, paths[:1], x, 1)
            three += per_frame_seconds(stylizer, paths, x, 1)
    m1, m3 = float(np.median(one)), float(np.median(three))
    print(f"frame {size[0]}x{size[1]}, bf16, cpu threads {torch.get_num_threads()}, "
          f"{rounds} rounds (median)")
    print(f"{'styles':<8}{'s / frame':>12}")
    print(f"{'1':<8}{m1:>12.4f}")
    print(f"{'3':<8}{m3:>12.4f}")
    print(f"3-style / 1-style cost: {m3 / m1:.3f}")


if __name__ == "__main__":
    main()
