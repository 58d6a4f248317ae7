"""What the native OpenFX bridge costs per frame against rendering the effect in process.

    python bench/ofx_bridge_bench.py               # 720p and 1080p echo, 360p stylize; 13 frames
    python bench/ofx_bridge_bench.py --frames 25
    python bench/ofx_bridge_bench.py --smoke       # 64x48, 3 frames, echo only: for CI

In process: vstpipe's own host (vstpipe/ofx_host.py, what `vstpipe ofx render` runs between its
decoder and encoder) renders each frame. Through the bridge: the compiled bundle
(`vstpipe ofx bundle`), loaded by the tests' ctypes host (tests/ofxhost.py) as an editing host
loads it, sends each frame to `vstpipe serve` and copies the result back. Both render the same
generated frames with the same settings; the median time per frame is taken after one warm-up
frame each (the server's start and the model's load are not counted). Echo is per-pixel arithmetic, so its column is mostly the bridge;
stylize (the embedded lite model) shows the share the bridge takes of a real look. Prints ms per
frame, the bridge's extra ms and the ratio, measured in the same run, and the largest difference
between the two outputs (in levels of the depth). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ofxhost import OK, Host, Instance

from vstpipe import effects, ofx, ofx_bundle, ofx_host

SCALE = {"byte": 255.0, "short": 65535.0, "float": 1.0}
DTYPE = {"byte": np.uint8, "short": np.uint16, "float": np.float32}


def frames(count: int, width: int, height: int, depth: str) -> list[np.ndarray]:
    """Top-down RGBA frames: a drifting gradient with a moving square."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    out = []
    for t in range(count):
        rgba = np.ones((height, width, 4), np.float32)
        rgba[..., 0] = (x + 0.05 * t) % 1
        rgba[..., 1] = y
        rgba[..., 2] = 0.5 + 0.4 * np.sin(6 * x + 4 * y + t)
        top = height // 8 + t * height // 40
        rgba[top:top + height // 4, width // 3:width // 2, :3] = (0.95, 0.9, 0.2)
        pixels = rgba * SCALE[depth]
        out.append((np.round(pixels) if depth != "float" else pixels).astype(DTYPE[depth]))
    return out


def in_process(effect: str, images: list[np.ndarray], depth: str,
               params: dict[str, object]) -> tuple[float, list[np.ndarray]]:
    found = effects.load_catalog().get(effect)
    values = ofx.ParamSet(ofx.describe(found, "filter").params)
    for name, value in params.items():
        values.set(name, value)
    h, w = images[0].shape[:2]
    host = ofx_host.Host(found, values, ofx_host.HostOptions(), (w, h), 25.0,
                         (0.0, float(len(images) - 1)), depth)
    host.begin()
    outs, seconds = [], []
    bottom_up = [np.ascontiguousarray(image[::-1]) for image in images]  # as a host holds them
    for t, pixels in enumerate(bottom_up):
        start = time.perf_counter()
        host.add_source(float(t), ofx.Image(pixels, ofx.Rect(0, 0, w, h), depth))
        outs.append(host.render(float(t)).pixels[::-1])
        seconds.append(time.perf_counter() - start)
    host.end()
    host.destroy()
    return statistics.median(seconds[1:]), outs


def bridged(binary: Path, effect: str, images: list[np.ndarray], depth: str,
            params: dict[str, object]) -> tuple[float, list[np.ndarray]]:
    host = Host(binary)
    inst = Instance(host, f"org.vstpipe.{effect}", images, depth)
    for name, value in params.items():
        inst.set(name, value)
    inst.sequence("Begin", 0, len(images) - 1)
    seconds = []
    for t in range(len(images)):
        start = time.perf_counter()
        status = inst.render(t)
        seconds.append(time.perf_counter() - start)
        if status != OK:
            raise SystemExit(f"the bridge failed at frame {t}: {host.messages[-1:]}")
    inst.sequence("End", 0, len(images) - 1)
    outs = [inst.output(t).copy() for t in range(len(images))]
    inst.close()
    return statistics.median(seconds[1:]), outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=13)
    ap.add_argument("--smoke", action="store_true", help="64x48, 3 frames, echo only")
    args = ap.parse_args()
    os.environ["VSTPIPE_OFFLINE"] = "1"
    if args.smoke:
        cases = [("echo", 64, 48, "byte", {})]
        count = 3
    else:
        cases = [("echo", 1280, 720, "byte", {}), ("echo", 1280, 720, "float", {}),
                 ("echo", 1920, 1080, "byte", {}), ("echo", 1920, 1080, "float", {}),
                 ("stylize", 640, 360, "byte", {"device": "cpu"}),
                 ("stylize", 640, 360, "float", {"device": "cpu"})]
        count = max(args.frames, 2)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = ofx_bundle.build(Path(tmp))
        print(f"median ms per frame of {count - 1} after one warm-up")
        print(f"{'effect':<9}{'size':>10}{'depth':>7}{'in process':>12}{'bridge':>9}"
              f"{'extra ms':>10}{'ratio':>8}{'max diff':>10}")
        for effect, w, h, depth, params in cases:
            images = frames(count, w, h, depth)
            own, own_out = in_process(effect, images, depth, params)
            via, via_out = bridged(bundle.binary, effect, images, depth, params)
            diff = max(float(np.abs(a.astype(np.float64) - b).max())
                       for a, b in zip(own_out, via_out, strict=True))
            print(f"{effect:<9}{f'{w}x{h}':>10}{depth:>7}{own * 1e3:>12.1f}{via * 1e3:>9.1f}"
                  f"{(via - own) * 1e3:>10.1f}{via / own:>7.2f}x{diff:>10.3g}")


if __name__ == "__main__":
    main()
