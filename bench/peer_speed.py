"""Whole-job speed of `vstpipe render` with the lite model against its peer, in one run.

    python bench/peer_speed.py                          # bikes.mp4 at its 640x272, 3 rounds
    python bench/peer_speed.py --rounds 5 --configs default,max-384,bf16,max-384+bf16
    python bench/peer_speed.py --smoke                  # seconds, for CI

Each round renders the clip once per configuration and once with the peer (bench/peer.py,
when installed), interleaved so that load on a shared machine hits them alike. Both jobs
decode the file, paint every frame at the clip's size and encode H.264 (libx264, the render's
default) to a file; fps = frames / seconds of the job, model loading and the style image
excluded for both. Configurations: ``default`` is the render as a user types it (precision
auto, no --max-side); ``max-N`` adds --max-side N (the network sees N pixels on the longer side,
as the peer's always sees 384), ``bf16``/``fp32`` set --precision, ``threads-N`` sets torch's
thread count, ``model-NAME`` renders with another model (a registry name or a model folder,
e.g. an earlier lite decoder); join them with ``+``. Prints the median fps of each and its
ratio to the peer's. Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import peer  # noqa: E402

from vstpipe import jobs, pipeline  # noqa: E402
from vstpipe.sessions import Sessions  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"


def _request(config: str, style: Path) -> tuple[jobs.Request, int | None]:
    parts = dict((p.split("-", 1) + [""])[:2] for p in config.split("+") if p != "default")
    precision = "bf16" if "bf16" in parts else "fp32" if "fp32" in parts else "auto"
    max_side = int(parts["max"]) if "max" in parts else None
    threads = int(parts["threads"]) if "threads" in parts else None
    return jobs.Request(styles=(style,), model=parts.get("model", "lite"), precision=precision,
                        max_side=max_side), threads


def lite_fps(clip: Path, out: Path, style: Path, config: str, sessions: Sessions) -> float:
    request, threads = _request(config, style)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        report = pipeline.render(clip, out, jobs.resolve(request), sessions, overwrite=True)
    finally:
        torch.set_num_threads(before)
    return report.frames / report.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=MEDIA / "bikes.mp4")
    parser.add_argument("--style", type=Path, default=MEDIA / "starry_night.jpg")
    parser.add_argument("--configs", default="default,max-384")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        clip, style, rounds, with_peer = args.clip, args.style, args.rounds, peer.available()
        if args.smoke or not MEDIA.is_dir():
            from clips import make_clip
            from PIL import Image
            print("smoke: a generated clip, one round")
            clip, rounds = make_clip(tmp / "clip.mp4", frames=6, size=(64, 48)), 1
            style = tmp / "style.png"
            Image.new("RGB", (64, 64), (200, 120, 40)).save(style)
        configs = args.configs.split(",")
        fps: dict[str, list[float]] = {c: [] for c in configs + (["peer"] if with_peer else [])}
        sessions = Sessions(offline=True)
        painter = peer.Peer(style) if with_peer else None
        for _ in range(rounds):
            for config in configs:
                fps[config].append(lite_fps(clip, tmp / "lite.mp4", style, config, sessions))
            if painter is not None:
                frames, seconds = painter.render(clip, tmp / "peer.mp4", codec="libx264")
                fps["peer"].append(frames / seconds)
        median = {k: statistics.median(v) for k, v in fps.items()}
        ref = median.get("peer")
        print(f"{clip.name}, {torch.get_num_threads()} torch threads, {rounds} rounds")
        width = max(22, 6 * rounds)
        print(f"{'job':<24}{'median fps':>11}   {'runs':<{width}} vs peer")
        for k, values in fps.items():
            runs = " ".join(f"{v:.2f}" for v in values)
            rel = f"{median[k] / ref:.2f}x" if ref else "-"
            print(f"{k:<24}{median[k]:>11.2f}   {runs:<{width}} {rel}")


if __name__ == "__main__":
    main()
