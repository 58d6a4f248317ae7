"""Reproducing the paper on CPU: image stage, then finetune with and without the affinity loss.

    python bench/paper_repro.py --work /tmp/repro                    # README's table
    python bench/paper_repro.py --work /tmp/repro --image-steps 300 --steps 300

1. A DAVIS-layout folder from the real clips of ../shared/media: each clip is split into shots
   at its cuts (the colour-histogram test of `render`), frames scaled to a short side of at most
   480 (DAVIS 480p) and written as JPEG. One clip is held out (default carphone_pristine.mp4).
2. Image stage (`vstpipe train`): content = every 10th training frame plus the still photos,
   style = starry_night.jpg, from the real uvc-lab weights: (a).
3. `vstpipe finetune` from (a) with L_c + L_s only (lambda_affinity = lambda_temporal = 0): (b);
   and with the full loss of eq. 9: (c). Same seed, steps and data for both.
4. Each model renders the held-out clip (FFV1, fp32) and `vstpipe eval` measures it: warping
   error ratio to the source and the style distance to starry_night.jpg.

Prints the commands it runs and a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
UVC = ROOT.parent / "shared" / "models" / "uvc-ae"
# tree.avi is left out: its header declares 444 frames but the file holds 68 packets, and the
# media layer (rightly) refuses it as truncated.
CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
STILLS = ("fruits.jpg", "baboon.jpg", "graf1.png")


def _vstpipe(*args: str) -> str:
    cmd = [sys.executable, "-m", "vstpipe", *args]
    print("$ vstpipe " + shlex.join(args), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def build_davis(work: Path, held_out: str) -> tuple[Path, Path]:
    """DAVIS folder of the training clips' shots, and a content folder for the image stage."""
    from vstpipe.media import Frame, open_source
    from vstpipe.temporal import TemporalOptions
    from vstpipe.temporal.cuts import CutDetector

    davis, content = work / "davis", work / "content"
    if (davis / "done").exists():
        return davis, content
    content.mkdir(parents=True, exist_ok=True)
    for name in CLIPS:
        if name == held_out:
            continue
        shot, index = -1, 0
        cuts = CutDetector.create(TemporalOptions())  # render's cut detection, default threshold
        with open_source(MEDIA / name) as source:
            for item in source.items():
                if not isinstance(item, Frame):
                    continue
                x = torch.from_numpy(item.rgb).permute(2, 0, 1)[None].float() / 255
                if cuts.shot_starts(x, 0)[0]:
                    shot, index = shot + 1, 0
                image = Image.fromarray(item.rgb)
                if min(image.size) > 480:
                    scale = 480 / min(image.size)
                    image = image.resize((round(image.width * scale),
                                          round(image.height * scale)), Image.BICUBIC)
                folder = davis / "JPEGImages" / "480p" / f"{Path(name).stem}-{shot:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                image.save(folder / f"{index:05d}.jpg", quality=95)
                if index % 10 == 0:
                    image.save(content / f"{folder.name}-{index:05d}.jpg", quality=95)
                index += 1
    for still in STILLS:
        Image.open(MEDIA / still).convert("RGB").save(content / Path(still).with_suffix(".png"))
    (davis / "done").touch()
    return davis, content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--held-out", default="carphone_pristine.mp4")
    parser.add_argument("--image-steps", type=int, default=200)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=FLAGS",
                        help="another finetune from (a), e.g. 'd-balanced=--lambda-affinity 100'")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    davis, content = build_davis(work, args.held_out)
    styles = work / "styles"
    styles.mkdir(exist_ok=True)
    (styles / "starry_night.jpg").write_bytes((MEDIA / "starry_night.jpg").read_bytes())
    common = ["--styles", str(styles), "--crop", str(args.crop), "--batch", str(args.batch),
              "--lr", str(args.lr), "--device", "cpu", "--offline", "--seed", "0"]
    runs = work / "runs"
    if not (runs / "a-image" / "model.json").exists():
        _vstpipe("train", "--content", str(content), "--out", str(runs / "a-image"),
                 "--model", str(UVC), "--steps", str(args.image_steps), *common)
    video = ["--davis", str(davis), "--model", str(runs / "a-image"), "--affinity", "encoder",
             "--steps", str(args.steps), *common]
    if not (runs / "b-content-style" / "model.json").exists():
        _vstpipe("finetune", "--out", str(runs / "b-content-style"), "--lambda-affinity", "0",
                 "--lambda-temporal", "0", *video)
    if not (runs / "c-full" / "model.json").exists():
        _vstpipe("finetune", "--out", str(runs / "c-full"), *video)
    extras = dict(item.split("=", 1) for item in args.extra)
    for name, flags in extras.items():
        if not (runs / name / "model.json").exists():
            _vstpipe("finetune", "--out", str(runs / name), *video, *shlex.split(flags))
    clip = MEDIA / args.held_out
    rows = []
    for label in ("a-image", "b-content-style", "c-full", *extras):
        out = work / f"{label}.mkv"
        _vstpipe("render", str(clip), "--model", str(runs / label), "--style",
                 str(styles / "starry_night.jpg"), "--out", str(out), "--overwrite",
                 "--precision", "fp32", "--codec", "ffv1", "--pix-fmt", "bgr0", "--offline")
        report = json.loads(_vstpipe("eval", str(clip), str(out), "--json", "--style",
                                     str(styles / "starry_night.jpg"), "--model",
                                     str(runs / label), "--offline"))
        rows.append((label, report))
    print(f"\nheld out: {args.held_out}; image stage {args.image_steps} steps, finetune "
          f"{args.steps} steps, crop {args.crop}, batch {args.batch}")
    print(f"{'model':<17}{'warp error':>12}{'ratio':>8}{'long ratio':>11}{'style dist':>11}")
    for label, r in rows:
        print(f"{label:<17}{r['warp_error']:>12.3e}{r['ratio']:>8.3f}"
              f"{r['long_term_ratio']:>11.3f}{r['style_distance']:>11.4f}")
    a, b, c = (r["ratio"] for _, r in rows[:3])
    print(f"\n(c) vs (a): ratio {c / a - 1:+.1%}; (c) vs (b): ratio {c / b - 1:+.1%}")


if __name__ == "__main__":
    main()
