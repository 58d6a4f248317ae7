"""Contact sheets: one frame rendered under every preset, labelled, so users choose by looking."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from . import atomic, jobs, timecode
from .errors import MediaError, OptionError
from .images import load_rgb
from .media import Frame, Trim, open_source
from .pipeline import Session
from .presets import Preset
from .sessions import Sessions
from .tensors import network_size

LABEL_H = 28  # pixels of caption under each tile


def first_frame(path: Path, at: str | None = None) -> np.ndarray:
    """(H, W, 3) uint8 of a still image, or of a video's frame at ``at`` (any form timecode.py
    reads, from the first frame; the first frame when None)."""
    try:
        with Image.open(path) as im:
            im.load()
        return load_rgb(path)
    except (UnidentifiedImageError, OSError):
        pass  # not a still image: try it as a video
    with open_source(path) as source:
        if at is not None:
            rate = source.info.average_rate
            try:
                source.trim(Trim(timecode.parse(at, Fraction(rate) if rate else None, "at",
                                                OptionError, setting=True)))
            except OptionError as err:  # the trim's words, for this command's --at
                if err.template is None:
                    raise
                raise OptionError.about(err.template.replace("{start}", "{at}"),
                                        **err.values) from None
        for item in source.items():
            if isinstance(item, Frame):
                rgb = item.rgb
                return (rgb >> 8).astype(np.uint8) if rgb.dtype == np.uint16 else rgb
    raise MediaError(f"{path}: no video frame to preview")


def render_tile(sessions: Sessions, rgb: np.ndarray, preset: Preset, tile: int,
                model: str | None = None) -> np.ndarray:
    """One frame under one preset (on ``model`` instead of its own when given), at most
    ``tile`` pixels on its longer side, uint8."""
    h, w = rgb.shape[:2]

    def session(max_side: int | None) -> Session:
        return sessions.session(jobs.for_preset(preset, jobs.Request(
            device="cpu", precision="fp32", batch=1, model=model, max_side=max_side)), (w, h))

    tiled = session(None)  # painted as a render paints it (the preset's or model's size) ...
    if tile < max(tiled.network_size) <= max(w, h):
        tiled = session(tile)  # ... but no larger than the tile, unless the model enlarges
    out = tiled.network_size if max(tiled.network_size) <= tile else network_size(w, h, tile)
    (frame,) = tiled.process([Frame(rgb, 0, Fraction(1))], out, 8)
    return frame.rgb


def contact_sheet(rgb: np.ndarray, presets: Sequence[Preset], sessions: Sessions,
                  tile: int = 320, model: str | None = None) -> Image.Image:
    """The original frame then one tile per preset, in a grid, each captioned."""
    h, w = rgb.shape[:2]
    tw, th = network_size(w, h, tile)
    tiles = [("original", np.asarray(Image.fromarray(rgb).resize((tw, th), Image.LANCZOS)))]
    for preset in presets:
        out = render_tile(sessions, rgb, preset, tile, model)
        tiles.append((preset.name, np.asarray(Image.fromarray(out).resize((tw, th)))))
    cols = min(4, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    sheet = Image.new("RGB", (cols * tw, rows * (th + LABEL_H)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=18)
    for i, (label, arr) in enumerate(tiles):
        x0, y0 = (i % cols) * tw, (i // cols) * (th + LABEL_H)
        sheet.paste(Image.fromarray(arr), (x0, y0))
        draw.text((x0 + 6, y0 + th + 4), label, fill="black", font=font)
    return sheet


def save_png(image: Image.Image, out: Path, overwrite: bool,
             inputs: Sequence[Path] = ()) -> None:
    """Write ``out`` through a locked temp file beside it, claimed only when complete."""
    atomic.check_target(out, inputs, overwrite=overwrite, what="contact sheet")
    with atomic.TempOutput(out, overwrite=overwrite) as tmp:
        image.save(tmp.path, format="PNG")
        tmp.commit()
