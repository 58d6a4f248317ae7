"""`vstpipe batch` on this machine: jobs per hour with one worker and with all of them, and one
long shot as a single render against --segments, in one run.

    python bench/batch_bench.py            # 4 clips x 2 looks at 320x180, a 240-frame shot
    python bench/batch_bench.py --smoke    # 2 clips x 1 look at 64x48, a 48-frame shot: CI

The clips are generated (a texture panning 2 px a frame, a keyframe every 24 frames, AAC
audio); the looks are shipped presets on the embedded lite model, offline. "all workers" is the
default pool (one CPU worker per two cores, so 1 on a 2-core machine) and --workers set to the
core count; each row is wall time from the plan to the summary, worker start-up and model loads
included. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clips import make_clip

from vstpipe.batch import local, plan, run


def panning(path: Path, frames: int, size: tuple[int, int]) -> Path:
    w, h = size
    rng = np.random.default_rng(7)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (h, w + 2 * frames, 3)), (0, 0), 3)
    texture = np.clip((texture - texture.mean()) * 4 + 128, 0, 255).astype(np.uint8)
    return make_clip(path, size=size, frames=frames, audio="aac",
                     video_options={"g": "24", "sc_threshold": "0"},
                     picture=lambda i: np.ascontiguousarray(texture[:, 2 * i:2 * i + w]))


def timed(job_file: Path, workers: int | None, segments: int = 1) -> tuple[float, int]:
    """Wall seconds of one batch run, and the frames it wrote."""
    start = time.perf_counter()
    summary = run.run(plan.load(job_file), local.LocalPool(local.slots(workers)),
                      segments=segments)
    seconds = time.perf_counter() - start
    bad = [o for o in summary.outcomes if o.status != "done"]
    if bad:
        raise SystemExit(f"a bench job failed: {bad[0].error}")
    return seconds, sum(o.frames for o in summary.outcomes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    os.environ["VSTPIPE_OFFLINE"] = "1"
    cores = os.cpu_count() or 1
    clips, looks, size, frames, shot = ((2, ["ink"], (64, 48), 12, 48) if args.smoke else
                                        (4, ["vangogh", "ink"], (320, 180), 48, 240))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i in range(clips):
            panning(tmp / f"clip{i}.mp4", frames, size)
        panning(tmp / "shot.mp4", shot, size)
        table = "".join(f'[looks.{name}]\npreset = "{name}"\nprecision = "fp32"\n'
                        for name in looks)

        def job_file(name: str, inputs: str, extra: str = "") -> Path:
            path = tmp / f"{name}.toml"
            path.write_text(f'inputs = [{inputs}]\nout_dir = "{name}"\n{table}{extra}')
            return path

        rows = []
        for label, workers in (("1 worker", 1), (f"{cores} workers", cores)):
            seconds, written = timed(job_file(f"many{workers}", '"clip*.mp4"'), workers)
            rows.append((f"{clips}x{len(looks)} jobs, {label}", seconds, written,
                         clips * len(looks) / seconds * 3600))
        steady = '\n[looks.steady]\npreset = "vangogh"\nsteady = true\nprecision = "fp32"\n'
        table = ""
        single, n1 = timed(job_file("single", '"shot.mp4"', steady), 1)
        parts, n2 = timed(job_file("parts", '"shot.mp4"', steady), cores, segments=cores)
        print(f"{cores} cores, clips {size[0]}x{size[1]}, the embedded lite model, fp32")
        print(f"{'run':<28}{'wall s':>9}{'frames':>8}{'jobs/hour':>11}")
        for name, seconds, written, per_hour in rows:
            print(f"{name:<28}{seconds:>9.1f}{written:>8}{per_hour:>11.0f}")
        print(f"{f'{shot}-frame shot, single':<28}{single:>9.1f}{n1:>8}")
        print(f"{f'{shot}-frame shot, {cores} segments':<28}{parts:>9.1f}{n2:>8}")
        print(f"all workers vs 1: {rows[0][1] / rows[1][1]:.2f}x jobs per hour; "
              f"{cores} segments vs single: {single / parts:.2f}x")


if __name__ == "__main__":
    main()
