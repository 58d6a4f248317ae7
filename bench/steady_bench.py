"""Consistency benchmark: per-frame stylization vs each inference-time option and --steady.

    python bench/steady_bench.py                       # README's table: bikes + bigbuckbunny
    python bench/steady_bench.py --clips bikes.mp4 --configs per-frame,flow-0.6
    python bench/steady_bench.py --throughput 3        # fps only, configs interleaved 3 times
    python bench/steady_bench.py --smoke               # a few seconds, for CI

Every configuration renders the whole clip with the real uvc-lab weights of ../shared/models
(random adain-vgg19 weights and a generated clip with --smoke), losslessly (FFV1), so the
figures measure the method, not the codec; then ``vstpipe eval`` measures it against the
source: short- and long-term warping error, their ratios to the source's own, and the style
distance to the style image. fps is the render's (decode + model + consistency + encode).
Prints a table and the ratios against per-frame stylization measured in the same run;
asserts nothing. ``--throughput N`` renders only (no evaluation), the configurations
interleaved N times so that load on a shared machine hits them alike, and prints the median fps
of each and its ratio to per-frame stylization.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from vstpipe import pipeline, weights
from vstpipe.evaluate import EvalOptions, evaluate_many
from vstpipe.keyframes import Timeline
from vstpipe.media import EncodeOptions
from vstpipe.sessions import Sessions
from vstpipe.spec import Compute, Job, Look
from vstpipe.temporal import STEADY, TemporalOptions

MEDIA = ROOT.parent / "shared" / "media"
UVC = ROOT.parent / "shared" / "models" / "uvc-ae"


def _config(name: str) -> TemporalOptions:
    """per-frame | steady (the --steady combination) | parts joined by "+": smooth-X, flow-X,
    edges-N (--flow-across-edges), after an optional leading "steady" that they override
    (steady+edges-0 is the previous --steady)."""
    if name == "per-frame":
        return TemporalOptions()
    first, *rest = name.split("+")
    values = dict(STEADY) if first == "steady" else {}
    keys = {"smooth": "smooth_stats", "flow": "flow_blend", "edges": "flow_across_edges"}
    for part in rest if first == "steady" else [first, *rest]:
        key, value = part.split("-", 1)
        values[keys[key]] = int(value) if key == "edges" else float(value)
    return TemporalOptions.of(values)


def _render(clip: Path, out: Path, style: Path, net, name: str, max_side: int, batch: int
            ) -> pipeline.RenderReport:
    job = Job(Look(Timeline.constant([style], [], 1.0)),
              Compute(precision="fp32", batch=batch, max_side=max_side),
              _config(name), model=net.name, encode=EncodeOptions(codec="ffv1", pix_fmt="bgr0"))
    return pipeline.render(clip, out, job, Sessions(nets={net.name: net}), overwrite=True)


def throughput(clip: Path, style: Path, net, configs: list[str], max_side: int, batch: int,
               rounds: int, tmp: Path) -> None:
    fps: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name in configs:
            report = _render(clip, tmp / "out.mkv", style, net, name, max_side, batch)
            fps[name].append(report.frames / report.seconds)
    median = {name: statistics.median(values) for name, values in fps.items()}
    base = median.get("per-frame")
    print(f"{'clip':<17}{'config':<20}{'median fps':>11}   runs{'':<20}vs per-frame")
    for name, values in fps.items():
        runs = " ".join(f"{v:.2f}" for v in values)
        rel = f"{median[name] / base:.3f}x" if base else ""
        print(f"{clip.name:<17}{name:<20}{median[name]:>11.2f}   {runs:<24}{rel}")


def run(clip: Path, style: Path, net, configs: list[str], max_side: int, batch: int,
        flows: list[str], tmp: Path) -> list[dict]:
    """Render every configuration, then measure all renders in one pass per estimator (the
    source's flows computed once), the style distance with the first."""
    outs, fps = [], []
    for name in configs:
        out = tmp / f"{clip.stem}-{name}.mkv"
        report = _render(clip, out, style, net, name, max_side, batch)
        outs.append(out)
        fps.append(report.frames / report.seconds)
    rows = [{"clip": clip.name, "config": name, "fps": f} for name, f in zip(configs, fps)]
    for flow in flows:
        first = flow == flows[0]
        reports = evaluate_many(clip, outs, EvalOptions(flow=flow, max_side=max_side),
                                style=style if first else None, net=net if first else None)
        for row, ev in zip(rows, reports, strict=True):
            row[flow] = (ev.ratio, ev.long_term_ratio)
            if first:
                row["style"] = ev.style_distance
    for out in outs:
        out.unlink()
    return rows


def show(rows: list[dict], flows: list[str]) -> None:
    """One line per render: short and long ratio (stylized / source) under each estimator with
    the change against per-frame, the style distance and its change, fps and its ratio."""
    head = "".join(f"{flow + ' short':>18}{flow + ' long':>16}" for flow in flows)
    print(f"{'clip':<24}{'config':<20}{head}{'style':>16}{'fps':>13}")
    base = {r["clip"]: r for r in rows if r["config"] == "per-frame"}
    for r in rows:
        b = base.get(r["clip"])

        def cell(value: float, ref: float | None, width: int, fmt: str = ".3f") -> str:
            change = f" ({value / ref - 1:+.0%})" if ref else ""
            return f"{format(value, fmt) + change:>{width}}"

        cells = "".join(cell(r[f][0], b and b[f][0], 18) + cell(r[f][1], b and b[f][1], 16)
                        for f in flows)
        style = f"{r['style']:.4f}" + (f" ({r['style'] / b['style'] - 1:+.1%})" if b else "")
        speed = f"{r['fps']:.2f}" + (f" ({r['fps'] / b['fps']:.2f}x)" if b else "")
        print(f"{r['clip']:<24}{r['config']:<20}{cells}{style:>16}{speed:>13}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="bikes.mp4,bigbuckbunny.mp4,carphone_pristine.mp4")
    parser.add_argument("--style", type=Path, default=MEDIA / "starry_night.jpg")
    parser.add_argument("--configs", default="per-frame,smooth-0.9,flow-0.8,steady")
    parser.add_argument("--flows", default="dis,tvl1,deepflow",
                        help="estimators to measure under; the style distance comes with the "
                             "first")
    parser.add_argument("--max-side", type=int, default=320)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--throughput", type=int, default=0, metavar="ROUNDS")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    configs, flows = args.configs.split(","), args.flows.split(",")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.smoke or not UVC.exists():
            from clips import make_clip
            from fakes import random_state

            from vstpipe import model
            print("smoke: generated clip, random adain-vgg19 weights" if args.smoke else
                  f"{UVC} is missing: smoke run on a generated clip with random weights")
            net = model.build("adain-vgg19", {r: random_state("adain-vgg19", r, i)
                                              for i, r in enumerate(("encoder", "decoder"))})
            clips = [make_clip(tmp / "clip.mp4", frames=6, size=(64, 48))]
            style = _random_style(tmp)
            max_side = 64
        else:
            net = weights.load(weights.resolve(str(UVC), offline=True))
            clips = [MEDIA / name for name in args.clips.split(",")]
            style, max_side = args.style, args.max_side
        if args.throughput:
            for clip in clips:
                throughput(clip, style, net, configs, max_side, args.batch, args.throughput,
                           tmp)
            return
        rows = []
        for clip in clips:
            rows += run(clip, style, net, configs, max_side, args.batch, flows, tmp)
            show(rows, flows)
            print()


def _random_style(tmp: Path) -> Path:
    import numpy as np
    from PIL import Image

    path = tmp / "style.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
                    ).save(path)
    return path


if __name__ == "__main__":
    main()
