"""`vstpipe eval --report`: one self-contained HTML page to look at what the figures say.

Two parts. :class:`Trace` is fed by the metric (evaluate.py) pair by pair and keeps what the page
shows: every pair's short-term error of the source and of each render (None where the pair was
skipped as a scene cut), and for each render the ``worst`` pairs' thumbnails, the frame beside
its predecessor warped onto it and their difference where the flow is valid. Memory is bounded:
a few floats per frame and ``worst`` thumbnail triples per render. :func:`page` then writes the
page: the figures table with the estimator named, the per-frame curves on a log scale with the
cuts marked (inline SVG), and the thumbnails (PNG as data URIs). Nothing is fetched from the
network; a few lines of script let a reader hide and show the curves.
"""

from __future__ import annotations

import base64
import heapq
import html
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from . import atomic

if TYPE_CHECKING:
    from .evaluate import EvalReport

# One colour per curve: the source first, then the renders (cycled when there are more).
COLOURS = ("#555555", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
THUMB = 240  # longer side of a thumbnail, pixels


@dataclass(order=True)
class Worst:
    """One of a render's worst pairs: the error, the frame index t (pair t-1 -> t), and
    uint8 thumbnails of frame t, of frame t-1 warped onto it, and of their difference."""

    error: float
    index: int
    frame: np.ndarray = field(compare=False)
    warped: np.ndarray = field(compare=False)
    difference: np.ndarray = field(compare=False)


class Trace:
    """What the report shows, collected while the metric runs (see the module docstring)."""

    def __init__(self, renders: int, worst: int = 3) -> None:
        self.source: list[float | None] = []  # per pair t-1 -> t, t = 1, 2, ...
        self.curves: list[list[float | None]] = [[] for _ in range(renders)]
        self._worst: list[list[Worst]] = [[] for _ in range(renders)]  # min-heaps
        self._keep = worst
        self.size = (0, 0)  # (W, H) of the evaluation, set by the metric

    @property
    def cuts(self) -> list[int]:
        """Frame indices t whose pair t-1 -> t was skipped as a scene cut."""
        return [t for t, value in enumerate(self.source, start=1) if value is None]

    def worst(self, render: int) -> list[Worst]:
        """The render's worst pairs, the worst first."""
        return sorted(self._worst[render], reverse=True)

    def skip(self) -> None:
        """The next pair was skipped as a scene cut: a gap in every curve."""
        self.source.append(None)
        for curve in self.curves:
            curve.append(None)

    def add(self, errors: Sequence[tuple[float, float]], frames: Sequence[np.ndarray],
            warped: Callable[[int], np.ndarray], valid: np.ndarray) -> None:
        """The next pair: per render (stylized, source) error; ``frames`` the renders' current
        frames (H, W, 3) float in [0, 1], ``warped(r)`` render r's previous frame warped onto
        the current one, ``valid`` the flow's mask."""
        self.source.append(errors[0][1])
        t = len(self.source)
        for render, (error, _) in enumerate(errors):
            self.curves[render].append(error)
            heap = self._worst[render]
            if len(heap) == self._keep and error <= heap[0].error:
                continue  # not among the worst: no thumbnails to make
            before = warped(render)
            entry = Worst(error, t, _thumb(frames[render]), _thumb(before),
                          _thumb(_difference(frames[render], before, valid)))
            if len(heap) < self._keep:
                heapq.heappush(heap, entry)
            else:
                heapq.heapreplace(heap, entry)


def _difference(now: np.ndarray, before: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-pixel |now - before| (channel mean) as a white-on-black map, x4 so that typical
    flicker shows; pixels the flow cannot explain are mid grey."""
    diff = np.clip(np.abs(now - before).mean(axis=2) * 4.0, 0.0, 1.0)
    out = np.where(valid, diff, 0.5)
    return np.repeat(out[..., None], 3, axis=2)


def _thumb(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> uint8 thumbnail, longer side at most THUMB."""
    image = Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    scale = THUMB / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))), Image.LANCZOS)
    return np.asarray(image)


def _img(rgb: np.ndarray, alt: str) -> str:
    """An <img> of ``rgb`` as an embedded PNG, shown with its longer side at THUMB pixels
    (small frames enlarged on screen, not in the file)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    height, width = rgb.shape[:2]
    scale = THUMB / max(height, width)
    return (f'<img alt="{html.escape(alt)}" width="{round(width * scale)}" '
            f'height="{round(height * scale)}" src="data:image/png;base64,{data}">')


@dataclass(frozen=True)
class Row:
    """One line of the figures table."""

    name: str
    short: float
    ratio: float | None  # None for the source
    long: float
    long_ratio: float | None
    style: float | None


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else "n/a" if not math.isfinite(value) else format(value, spec)


def _plot(trace: Trace, names: Sequence[str]) -> str:
    """Inline SVG: each curve's per-pair error against the frame index, log y, cuts marked."""
    width, height, left, right, top, bottom = 900, 320, 70, 20, 20, 40
    series = [trace.source, *trace.curves]
    values = [v for curve in series for v in curve if v is not None and v > 0]
    frames = len(trace.source) + 1
    low, high = (min(values), max(values)) if values else (1e-6, 1e-5)
    lo, hi = math.floor(math.log10(low)), math.ceil(math.log10(high))
    hi = max(hi, lo + 1)

    def x(t: float) -> float:
        return left + (width - left - right) * t / max(frames - 1, 1)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (hi - math.log10(v)) / (hi - lo)

    parts = [f'<svg id="curve" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="short-term warping error per frame">',
             f'<rect x="{left}" y="{top}" width="{width - left - right}" '
             f'height="{height - top - bottom}" fill="#fafafa" stroke="#999"/>']
    for power in range(lo, hi + 1):
        yy = y(10.0 ** power)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" '
                     f'stroke="#ddd"/><text x="{left - 6}" y="{yy + 4:.1f}" font-size="11" '
                     f'text-anchor="end">1e{power}</text>')
    step = max(1, 10 ** math.floor(math.log10(max(frames - 1, 1))) // 2)
    for t in range(0, frames, step):
        parts.append(f'<text x="{x(t):.1f}" y="{height - bottom + 16}" font-size="11" '
                     f'text-anchor="middle">{t}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" font-size="12" '
                 f'text-anchor="middle">frame t (pair t-1 -&gt; t)</text>')
    for t in trace.cuts:
        parts.append(f'<line class="cut" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" '
                     f'y2="{height - bottom}" stroke="#e377c2" stroke-dasharray="4 3"/>')
    for index, (curve, name) in enumerate(zip(series, names, strict=True)):
        colour = COLOURS[index % len(COLOURS)]
        runs, run = [], []
        for t, value in enumerate(curve, start=1):
            if value is None or value <= 0:  # a cut, or an exact match that log cannot show
                runs.append(run)
                run = []
                continue
            run.append(f"{x(t):.1f},{y(value):.1f}")
        runs.append(run)
        for points in runs:
            if len(points) == 1:  # a lone pair between two cuts: a dot
                cx, cy = points[0].split(",")
                parts.append(f'<circle class="s{index}" cx="{cx}" cy="{cy}" r="2" '
                             f'fill="{colour}"/>')
            elif points:
                parts.append(f'<polyline class="s{index}" fill="none" stroke="{colour}" '
                             f'stroke-width="1.5" points="{" ".join(points)}"/>')
    parts.append("</svg>")
    legend = "".join(
        f'<button type="button" class="key" data-series="s{i}" aria-pressed="true">'
        f'<span style="background:{COLOURS[i % len(COLOURS)]}"></span>{html.escape(n)}</button>'
        for i, n in enumerate(names))
    count = len(trace.cuts)
    cuts = (f'<span class="cutkey"></span> scene cut ({count} pair{"s" * (count != 1)} '
            "skipped)" if count else "no scene cuts")
    return f'<div class="legend">{legend} {cuts}</div>{"".join(parts)}'


_STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1000px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.legend { margin: 8px 0; }
.key { border: 1px solid #ccc; background: #fff; margin-right: 6px; cursor: pointer; }
.key[aria-pressed="false"] { opacity: 0.4; }
.key span, .cutkey { display: inline-block; width: 14px; height: 4px; margin-right: 5px;
  vertical-align: middle; }
.cutkey { border-top: 2px dashed #e377c2; height: 0; }
.worst { display: flex; gap: 8px; align-items: flex-start; margin: 6px 0 14px; }
.worst figure { margin: 0; }
.worst img { display: block; image-rendering: auto; }
figcaption { font-size: 12px; color: #555; }
"""

_SCRIPT = """
for (const key of document.querySelectorAll(".key")) {
  key.addEventListener("click", () => {
    const shown = key.getAttribute("aria-pressed") !== "true";
    key.setAttribute("aria-pressed", String(shown));
    for (const mark of document.querySelectorAll("#curve ." + key.dataset.series)) {
      mark.style.display = shown ? "" : "none";
    }
  });
}
"""


def page(source: Path, names: Sequence[str], rows: Sequence[Row], trace: Trace, flow: str,
         frames: int, long_gap: int, size: tuple[int, int]) -> str:
    """The report's HTML: ``names`` are the renders' (their rows follow the source's)."""
    head = ("<tr><th>video</th><th>warping error</th><th>ratio to source</th>"
            f"<th>long-term ({long_gap} frames)</th><th>ratio</th><th>style distance</th></tr>")
    body = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td>{_fmt(r.short, '.6f')}</td>"
        f"<td>{_fmt(r.ratio, '.3f')}</td><td>{_fmt(r.long, '.6f')}</td>"
        f"<td>{_fmt(r.long_ratio, '.3f')}</td><td>{_fmt(r.style, '.4f')}</td></tr>"
        for r in rows)
    worst = []
    for render, name in enumerate(names):
        worst.append(f"<h3>{html.escape(name)}</h3>")
        for entry in trace.worst(render):
            worst.append(
                '<div class="worst">'
                f'<figure>{_img(entry.frame, f"frame {entry.index}")}'
                f"<figcaption>frame {entry.index}: error {entry.error:.6f}</figcaption></figure>"
                f'<figure>{_img(entry.warped, f"frame {entry.index - 1} warped")}'
                f"<figcaption>frame {entry.index - 1} warped onto it</figcaption></figure>"
                f'<figure>{_img(entry.difference, "difference")}'
                "<figcaption>difference x4 (grey: no valid flow)</figcaption></figure></div>")
    title = f"vstpipe eval: {source.name}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Warping error (Lai et al. 2018) of each render against <b>{html.escape(str(source))}</b>
under <b id="flow">{html.escape(flow)}</b> flow on the source, {frames} frames evaluated at
{size[0]}x{size[1]}; ratio = the render's error / the source's own under the same flows and
masks (1.0: no flicker beyond what the flow cannot explain). Scene cuts (the source's colours
jump, or too few pixels pass the occlusion test) are skipped. A ratio is of the means, so the
pairs with the largest errors decide it: the curves show which.</p>
<h2>Figures ({html.escape(flow)})</h2>
<table id="figures">{head}{body}</table>
<h2>Short-term error per frame</h2>
{_plot(trace, ["source", *names])}
<h2>Worst frames</h2>
<p>Per render, the pairs with the largest short-term error: the frame, its predecessor warped
onto it along the source's flow, and where they differ.</p>
{"".join(worst)}
<script>{_SCRIPT}</script>
</body></html>
"""


def write(out: Path, source: Path, renders: Sequence[Path], reports: Sequence[EvalReport],
          trace: Trace, long_gap: int, *, overwrite: bool = False) -> None:
    """Write the page for ``reports`` (evaluate_many's, with ``trace`` fed) to ``out``,
    atomically: a temp file beside it, claimed only when complete."""
    first = reports[0]
    rows = [Row(f"{source} (source)", first.warp_error_source, None, first.long_term_source,
                None, None)]
    rows += [Row(str(path), r.warp_error, r.ratio, r.long_term, r.long_term_ratio,
                 r.style_distance) for path, r in zip(renders, reports, strict=True)]
    text = page(source, [str(path) for path in renders], rows, trace, first.flow,
                first.frames, long_gap, trace.size)
    atomic.write_bytes(out, text.encode("utf-8"), overwrite=overwrite)
