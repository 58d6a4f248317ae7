"""Memory of the inter-frame affinity loss (eq. 8): forward + backward, full vs chunked.

    python bench/affinity_memory.py            # 256x256 and 854x480 crops
    python bench/affinity_memory.py --smoke    # a tiny size, for CI

Affinity matrices are (HW)^2 per frame pair at feature resolution (stride 8): 1024^2 entries
for a 256x256 crop, 6420^2 (107 x 60 positions) for 854x480. Each case runs in a fresh
process, which reports its peak resident memory (ru_maxrss) over a baseline process that only
builds the same features; the table prints the increase, the size of one float32 affinity
matrix for comparison, and the ratio chunked / full. Features are random (512 channels, as
UVC's tracker and VGG's relu4_1 have), batch 1 pair; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from vstpipe.train.losses import AffinitySettings, pair_affinity_loss

CHANNELS = 512


def _case(height: int, width: int, chunk: int | None) -> None:
    """Run in a child: features for one pair, then (unless chunk is None) loss + backward."""
    h, w = height // 8, width // 8
    torch.manual_seed(0)
    src = [torch.randn(1, CHANNELS, h, w) for _ in range(2)]
    sty = [torch.randn(1, CHANNELS, h, w, requires_grad=True) for _ in range(2)]
    if chunk is not None:
        settings = AffinitySettings(chunk=chunk)
        pair_affinity_loss(*src, *sty, settings).backward()
    print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _measure(height: int, width: int, chunk: int | None) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", str(height), str(width),
                          str(chunk)], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        height, width, chunk = args.child
        _case(int(height), int(width), None if chunk == "None" else int(chunk))
        return
    sizes = [(64, 64)] if args.smoke else [(256, 256), (480, 854)]
    print(f"{'crop':>9} {'N=hw':>6} {'one A (MB)':>11} {'full (MB)':>10} {'chunk 1024 (MB)':>16}"
          f" {'chunked/full':>13}")
    for height, width in sizes:
        n = (height // 8) * (width // 8)
        base = _measure(height, width, None)
        full = _measure(height, width, n) - base  # one chunk holding every column
        chunked = _measure(height, width, 1024) - base
        print(f"{width}x{height:<5} {n:>6} {n * n * 4 / 2**20:>11.1f} {full:>10.1f} "
              f"{chunked:>16.1f} {chunked / max(full, 1e-9):>13.2f}")


if __name__ == "__main__":
    main()
