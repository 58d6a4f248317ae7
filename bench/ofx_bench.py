"""Effect-host benchmark: the stylizer through `vstpipe ofx render` vs `vstpipe render`.

    python bench/ofx_bench.py                # bikes.mp4, real uvc-ae weights, --max-side 320
    python bench/ofx_bench.py --repeat 3     # each configuration 3 times, interleaved; medians
    python bench/ofx_bench.py --smoke        # a generated clip and random weights, for CI

The host renders one frame per call (OpenFX's unit of work) and, with tiles, one window per
call; render batches frames. Every configuration renders the same clip losslessly (FFV1) with
the same look; prints median fps, the ratio to `render --batch 4` measured in the same run, and
the largest pixel difference from `render --batch 1` (0 means the same picture). Asserts
nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clips import make_clip
from fakes import save_random_weights

from vstpipe import effects, ofx, ofx_host, pipeline
from vstpipe.keyframes import Timeline
from vstpipe.media import EncodeOptions
from vstpipe.sessions import Sessions
from vstpipe.spec import Compute, Job, Look

MEDIA = ROOT.parent / "shared" / "media"
UVC = ROOT.parent / "shared" / "models" / "uvc-ae"
LOSSLESS = EncodeOptions(codec="ffv1", pix_fmt="bgr0")
CONFIGS = ("render batch 4", "render batch 1", "ofx 1x1", "ofx 2x2")


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _run(name: str, clip: Path, out: Path, model: str, style: Path, max_side: int) -> float:
    """Render ``clip`` with configuration ``name``; returns seconds."""
    start = time.perf_counter()
    if name.startswith("render"):
        job = Job(Look(Timeline.constant([style], [], 1.0)),
                  Compute(device="cpu", precision="fp32", batch=int(name.rsplit(" ", 1)[1]),
                          max_side=max_side), model=model, encode=LOSSLESS)
        pipeline.render(clip, out, job, Sessions(offline=True), overwrite=True)
    else:
        stylize = effects.load_catalog().get("stylize")
        params = ofx.ParamSet(ofx.describe(stylize, "filter").params)
        for key, value in (("style", str(style)), ("model", model), ("max_side", max_side),
                           ("device", "cpu"), ("precision", "fp32")):
            params.set(key, value)
        tiles = ofx_host.parse_tiles(name.split(" ")[1])
        ofx_host.render_video(stylize, clip, out, params, ofx_host.HostOptions(tiles=tiles),
                              LOSSLESS, overwrite=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=MEDIA / "bikes.mp4")
    ap.add_argument("--max-side", type=int, default=320)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="tiny clip, random weights")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        style = MEDIA / "starry_night.jpg"
        if args.smoke or not UVC.exists():
            clip = make_clip(tmp / "in.mkv", size=(64, 48), frames=6, codec="ffv1",
                             pix_fmt="bgr0")
            save_random_weights("adain-vgg19", tmp / "model")
            model, style = str(tmp / "model"), make_style(tmp)
        else:
            clip, model = args.clip, str(UVC)
        seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
        for _ in range(args.repeat):
            for name in CONFIGS:
                out = tmp / f"{name.replace(' ', '-')}.mkv"
                seconds[name].append(_run(name, clip, out, model, style, args.max_side))
        count = len(_frames(tmp / "render-batch-1.mkv"))
        reference = _frames(tmp / "render-batch-1.mkv")
        print(f"clip {clip.name}, {count} frames, max side {args.max_side}, fp32, "
              f"median of {args.repeat}")
        print(f"{'configuration':<16}{'fps':>8}{'vs render batch 4':>19}{'max diff':>10}")
        base = count / statistics.median(seconds[CONFIGS[0]])
        for name in CONFIGS:
            fps = count / statistics.median(seconds[name])
            frames = _frames(tmp / f"{name.replace(' ', '-')}.mkv")
            diff = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(frames, reference))
            print(f"{name:<16}{fps:>8.2f}{fps / base:>18.2f}x{diff:>10}")


def make_style(tmp: Path) -> Path:
    from PIL import Image

    path = tmp / "style.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


if __name__ == "__main__":
    main()
