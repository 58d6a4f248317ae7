"""Render benchmark: model-only vs end-to-end fps, bf16 vs fp32, peak memory vs video length.

    python bench/render_bench.py            # full run (bikes.mp4 at 640x272 when ../shared exists)
    python bench/render_bench.py --smoke    # a few seconds, for CI

Prints a table and ratios measured in the same run; asserts nothing about absolute times.
Weights are random in the published adain-vgg19 layout: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clips import make_clip
from fakes import random_state

from vstpipe import model, pipeline
from vstpipe.images import load_style
from vstpipe.keyframes import Timeline
from vstpipe.media import open_source
from vstpipe.sessions import Sessions
from vstpipe.spec import Compute, Job, Look
from vstpipe.stylize import Stylizer, to_levels
from vstpipe.tensors import network_size, to_frames, to_tensor

SHARED = ROOT.parent / "shared" / "media"
UVC = ROOT.parent / "shared" / "models" / "uvc-ae"


def _net(arch: str = "adain-vgg19") -> model.StyleNet:
    return model.build(arch, {r: random_state(arch, r, i)
                              for i, r in enumerate(("encoder", "decoder"))})


def _style(tmp: Path) -> Path:
    from PIL import Image

    path = tmp / "style.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(path)
    return path


def _decoded(src: Path, limit: int) -> list:
    frames = []
    with open_source(src) as source:
        for item in source.items():
            if hasattr(item, "rgb"):
                frames.append(item)
                if len(frames) == limit:
                    break
    return frames


def model_fps(src: Path, style: Path, precision: torch.dtype, batch: int, limit: int
              ) -> tuple[float, np.ndarray]:
    """Frames per second of to_tensor -> stylize -> to_frames on already-decoded frames."""
    frames = _decoded(src, limit)
    stylizer = Stylizer(_net(), torch.device("cpu"), precision)
    bank = pipeline.StyleBank.encode(stylizer, [load_style(style, 512)])
    mean, std = bank.target(torch.ones(1))
    h, w = frames[0].rgb.shape[:2]
    size = network_size(w, h, None)
    first = None
    stylizer(to_tensor(frames[:1], size, stylizer.device), mean, std)  # warm-up
    start = time.perf_counter()
    for i in range(0, len(frames), batch):
        chunk = frames[i:i + batch]
        out = to_frames(stylizer(to_tensor(chunk, size, stylizer.device), mean, std), chunk,
                        (w, h), 8)
        if first is None:
            first = out[0].rgb
    return len(frames) / (time.perf_counter() - start), first


def real_precision_diff(src: Path, style: Path) -> np.ndarray | None:
    """8-bit |bf16 - fp32| of the real uvc-lab weights on the clip's first frames, if present.

    Random weights say nothing about precision (their output saturates), real ones do.
    """
    if not (UVC / "encoder_single_gpu.pth").exists():
        return None
    states = {r: torch.load(UVC / f, map_location="cpu", weights_only=True)
              for r, f in model.FAMILIES["uvc-lab"].files.items()}
    frames = _decoded(src, 4)
    h, w = frames[0].rgb.shape[:2]
    styles = [load_style(style, 512)]
    levels = []
    for dtype in (torch.float32, torch.bfloat16):
        stylizer = Stylizer(model.build("uvc-lab", states), torch.device("cpu"), dtype)
        x = to_tensor(frames, network_size(w, h, None), stylizer.device)
        bank = pipeline.StyleBank.encode(stylizer, styles)
        levels.append(to_levels(stylizer(x, *bank.target(torch.ones(1)))))
    return (levels[0] - levels[1]).abs().numpy()


def e2e_fps(src: Path, style: Path, precision: str, batch: int, out: Path,
            max_side: int | None = None) -> float:
    job = Job(Look(Timeline.constant([style])),
              Compute(device="cpu", precision=precision, batch=batch, max_side=max_side),
              model="uvc-lab")
    report = pipeline.render(src, out, job, Sessions(nets={"uvc-lab": _net()}), overwrite=True)
    return report.frames / report.seconds


def peak_rss_mb(src: Path, style: Path, out: Path) -> float:
    """Peak RSS of a whole render in a fresh process (ru_maxrss of the child, MB).

    Frames are decoded and encoded at full size; the network runs at 128 pixels so that a
    400-frame render stays quick.
    """
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); "
            "import render_bench as b; from pathlib import Path; "
            f"b.e2e_fps(Path({str(src)!r}), Path({str(style)!r}), 'bf16', 4, Path({str(out)!r}), 128); "
            "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(done.stdout.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    ap.add_argument("--frames", type=int, default=48, help="frames timed for fps")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        style = _style(tmp)
        n_frames, mem_sizes, mem_size = args.frames, (100, 400), (640, 272)
        src = tmp / "clip.mp4"
        if args.smoke:
            n_frames, mem_sizes, mem_size = 8, (10, 40), (32, 24)
            make_clip(src, size=(64, 48), frames=n_frames)
        elif (SHARED / "bikes.mp4").exists():
            _trim(SHARED / "bikes.mp4", src, n_frames)  # time exactly n_frames of the real clip
        else:
            make_clip(src, size=(640, 272), frames=n_frames)
        rows = {}
        for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
            fps, first = model_fps(src, style, dtype, args.batch, n_frames)
            rows[name] = {"model_fps": fps, "first": first}
            rows[name]["e2e_fps"] = e2e_fps(src, style, name, args.batch, tmp / f"o_{name}.mp4")
        diff = np.abs(rows["bf16"]["first"].astype(int) - rows["fp32"]["first"].astype(int))
        real = None if args.smoke else real_precision_diff(
            SHARED / "bikes.mp4" if (SHARED / "bikes.mp4").exists() else src,
            SHARED / "starry_night.jpg" if (SHARED / "starry_night.jpg").exists() else style)
        mem = {n: peak_rss_mb(make_clip(tmp / f"m{n}.mp4", size=mem_size, frames=n), style,
                              tmp / f"mo{n}.mp4") for n in mem_sizes}
    print(f"clip: {src.name} {first.shape[1]}x{first.shape[0]}, {n_frames} frames, "
          f"batch {args.batch}, cpu threads {torch.get_num_threads()}")
    print(f"{'precision':<10}{'model fps':>12}{'end-to-end fps':>16}{'e2e / model':>14}")
    for name, r in rows.items():
        print(f"{name:<10}{r['model_fps']:>12.3f}{r['e2e_fps']:>16.3f}"
              f"{r['e2e_fps'] / r['model_fps']:>14.3f}")
    print(f"bf16 / fp32 model speed: {rows['bf16']['model_fps'] / rows['fp32']['model_fps']:.2f}x;"
          f" bf16 vs fp32 8-bit output: max |diff| {diff.max()}/255, "
          f"99.9th pct {np.percentile(diff, 99.9):.0f}/255, mean {diff.mean():.3f}/255 "
          "(random weights)")
    if real is not None:
        print(f"bf16 vs fp32 on the real uvc-lab weights: max |diff| {real.max():.0f}/255, "
              f"99.9th pct {np.percentile(real, 99.9):.0f}/255, mean {real.mean():.3f}/255 "
              f"(precision auto takes bf16 only within 2/255)")
    a, b = mem_sizes
    print(f"peak RSS: {a} frames {mem[a]:.0f} MB, {b} frames {mem[b]:.0f} MB, "
          f"ratio {mem[b] / mem[a]:.3f} ({mem_size[0]}x{mem_size[1]} clips, network at 128)")
    if args.json:
        print(json.dumps({k: {m: v for m, v in r.items() if m != "first"}
                          for k, r in rows.items()} | {"peak_rss_mb": mem}))


def _trim(src: Path, dst: Path, frames: int) -> None:
    """Copy the first ``frames`` frames of ``src`` losslessly enough for timing (re-encoded)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream("libx264", rate=s_in.average_rate)
        s_out.width, s_out.height, s_out.pix_fmt = s_in.width, s_in.height, "yuv420p"
        s_out.options = {"crf": "12"}
        s_out.codec_context.time_base = 1 / s_in.average_rate
        for i, frame in enumerate(inp.decode(s_in)):
            if i == frames:
                break
            frame.pts, frame.time_base = i, s_out.codec_context.time_base
            for p in s_out.encode(frame):
                out.mux(p)
        for p in s_out.encode():
            out.mux(p)


if __name__ == "__main__":
    main()
