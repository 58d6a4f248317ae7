"""Generate the procedural style images shipped in ``presets/``.

Run ``python presets/make_styles.py``. Every image is drawn from fixed seeds with numpy and
Pillow only, so a rerun writes byte-identical files (same numpy and Pillow versions, same
platform: float rounding in FFTs and ``sin`` may differ elsewhere).
Images are 512x512; each is written as PNG, or as JPEG (quality 90) when the PNG would be
larger than ``PNG_LIMIT`` bytes. They are built to be good AdaIN styles: bold palettes and
texture at several scales matter more than composition.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 512
OUT_DIR = Path(__file__).resolve().parent
PNG_LIMIT = 400_000

Array = np.ndarray


# --------------------------------------------------------------------------- helpers


def rgb(hex_colour: str) -> Array:
    """'#rrggbb' -> float32 RGB in [0, 1]."""
    h = hex_colour.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], np.float32) / 255.0


def colours(hex_codes: str) -> list[Array]:
    """Space-separated 'rrggbb' codes -> list of float32 RGB colours."""
    return [rgb(code) for code in hex_codes.split()]


def smooth_noise(rng: np.random.Generator, cells: int | tuple[int, int], size: int = SIZE) -> Array:
    """Bicubic value noise in about [0, 1]; ``cells`` random values per side (rows, cols)."""
    ch, cw = (cells, cells) if isinstance(cells, int) else cells
    grid = rng.random((ch + 3, cw + 3), dtype=np.float32)
    img = Image.fromarray(grid).resize(
        (size, size), Image.Resampling.BICUBIC, box=(1, 1, cw + 1, ch + 1)
    )
    return np.asarray(img, np.float32)


def fbm(rng: np.random.Generator, base: int = 3, octaves: int = 5, gain: float = 0.5) -> Array:
    """Fractal value noise normalised to [0, 1]."""
    total = np.zeros((SIZE, SIZE), np.float32)
    amp = 1.0
    for i in range(octaves):
        total += amp * (smooth_noise(rng, min(base * 2**i, SIZE)) - 0.5)
        amp *= gain
    return (total - total.min()) / (total.max() - total.min())


def blur(a: Array, sigma: float) -> Array:
    """Gaussian blur of an (H, W) or (H, W, C) float array (FFT, reflect padding)."""
    pad = int(3 * sigma) + 2
    widths = [(pad, pad), (pad, pad)] + [(0, 0)] * (a.ndim - 2)
    b = np.pad(a, widths, mode="reflect")
    h, w = b.shape[:2]
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    g = np.exp(-2.0 * np.pi**2 * sigma**2 * (fy**2 + fx**2))
    if a.ndim == 3:
        g = g[..., None]
    out = np.fft.irfft2(np.fft.rfft2(b, axes=(0, 1)) * g, s=(h, w), axes=(0, 1))
    return out[pad : pad + a.shape[0], pad : pad + a.shape[1]].astype(np.float32)


def smoothstep(lo: float, hi: float, x: Array) -> Array:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def over(base: Array, colour: Array, alpha: Array) -> Array:
    """Alpha-composite ``colour`` (RGB or HxWx3) over ``base`` with an (H, W) alpha."""
    a = alpha[..., None]
    return base * (1.0 - a) + colour * a


class Mask:
    """A supersampled greyscale canvas for anti-aliased ImageDraw shapes."""

    def __init__(self, scale: int = 2) -> None:
        self.scale = scale
        self.img = Image.new("L", (SIZE * scale, SIZE * scale), 0)
        self.draw = ImageDraw.Draw(self.img)

    def pts(self, points: Array) -> list[tuple[float, float]]:
        return [tuple(p) for p in (np.asarray(points) * self.scale).tolist()]

    def line(self, points: Array, width: float, value: int = 255) -> None:
        pts = self.pts(points)
        w = max(1, round(width * self.scale))
        self.draw.line(pts, fill=value, width=w, joint="curve")
        r = w / 2.0
        for x, y in (pts[0], pts[-1]):
            self.draw.ellipse((x - r, y - r, x + r, y + r), fill=value)

    def polygon(self, points: Array, value: int = 255) -> None:
        self.draw.polygon(self.pts(points), fill=value)

    def disc(self, x: float, y: float, r: float, value: int = 255) -> None:
        s = self.scale
        self.draw.ellipse(((x - r) * s, (y - r) * s, (x + r) * s, (y + r) * s), fill=value)

    def array(self) -> Array:
        img = self.img
        if self.scale != 1:
            img = img.resize((SIZE, SIZE), Image.Resampling.BOX)
        return np.asarray(img, np.float32) / 255.0


def wander(
    rng: np.random.Generator,
    start: Array,
    n: int,
    step: float,
    bend: float,
    heading: float | None = None,
) -> Array:
    """A smooth random path of ``n`` points: the curvature itself drifts randomly."""
    if heading is None:
        heading = rng.uniform(0, 2 * np.pi)
    curvature = np.convolve(rng.normal(0.0, bend, n + 8), np.ones(9) / 9.0, mode="valid")
    angles = heading + np.cumsum(curvature[:n])
    steps = np.stack([np.cos(angles), np.sin(angles)], axis=1) * step
    return np.asarray(start, np.float64) + np.cumsum(steps, axis=0)


def blob_outline(
    rng: np.random.Generator, cx: float, cy: float, radius: float, wobble: float, n: int = 160
) -> Array:
    """Closed wobbly outline: radius modulated by a few random low harmonics."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 7):
        r += wobble / k * rng.normal() * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(r, 0.35, None)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def ribbon(path: Array, widths: Array) -> Array:
    """Polygon around ``path`` with a per-point width (for brush and broad-nib strokes)."""
    d = np.gradient(path, axis=0)
    ang = np.arctan2(d[:, 1], d[:, 0])
    normal = np.stack([-np.sin(ang), np.cos(ang)], axis=1) * (np.asarray(widths) / 2)[:, None]
    return np.concatenate([path + normal, (path - normal)[::-1]])


def pixel_grid() -> tuple[Array, Array]:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return yy, xx


# --------------------------------------------------------------------------- styles


def make_mosaic(rng: np.random.Generator) -> Array:
    """Stained glass: jittered Voronoi cells in jewel colours with dark lead lines."""
    n = 12
    gy, gx = np.mgrid[0:n, 0:n]
    seeds = np.stack([gx, gy], -1).reshape(-1, 2) + 0.5 + rng.uniform(-0.45, 0.45, (n * n, 2))
    seeds = np.concatenate([seeds * (SIZE / n), rng.uniform(0, SIZE, (8, 2))]).astype(np.float32)

    yy, xx = pixel_grid()
    wx = xx + 14.0 * (smooth_noise(rng, 5) - 0.5)  # hand-cut, slightly wavy lead
    wy = yy + 14.0 * (smooth_noise(rng, 5) - 0.5)
    labels = np.empty((SIZE, SIZE), np.int64)
    d1 = np.empty((SIZE, SIZE), np.float32)
    gap = np.empty((SIZE, SIZE), np.float32)
    rows = 32
    for r0 in range(0, SIZE, rows):
        px = wx[r0 : r0 + rows].reshape(-1, 1)
        py = wy[r0 : r0 + rows].reshape(-1, 1)
        d2 = (px - seeds[:, 0]) ** 2 + (py - seeds[:, 1]) ** 2
        two = np.sqrt(np.partition(d2, 1, axis=1)[:, :2])
        labels[r0 : r0 + rows] = d2.argmin(axis=1).reshape(rows, SIZE)
        d1[r0 : r0 + rows] = two[:, 0].reshape(rows, SIZE)
        gap[r0 : r0 + rows] = (two[:, 1] - two[:, 0]).reshape(rows, SIZE)

    palette = colours(
        "b3081e e01a3c 0b2f9f 1f5fd6 06804a 0fa86a f2a20c f7cf2a 6c1b8f 9b36c4 0b9aa6 e2611b 1b2a6b"
    )
    cells = len(seeds)
    cell_colours = np.stack(palette)[rng.integers(0, len(palette), cells)]
    cell_colours *= rng.uniform(0.75, 1.15, (cells, 1)).astype(np.float32)
    colour = cell_colours[labels]

    # glass: brighter towards each piece's middle, streaky cathedral-glass texture, bubbles
    cell_r = SIZE / n * 0.7
    glow = 0.7 + 0.45 * np.clip(1.0 - d1 / cell_r, 0.0, 1.0)
    streak = smooth_noise(rng, (6, 48)) * 0.6 + smooth_noise(rng, (48, 6)) * 0.4
    ripple = 0.85 + 0.3 * streak + 0.12 * (fbm(rng, base=8, octaves=4) - 0.5)
    bubbles = blur((rng.random((SIZE, SIZE)) > 0.9994).astype(np.float32), 1.0) * 3.0
    light = 0.85 + 0.3 * smoothstep(0.0, 1.0, 1.0 - np.hypot(xx - 256, yy - 256) / 400.0)
    glass = colour * (glow * ripple * light)[..., None] + np.clip(bubbles, 0, 0.25)[..., None]

    # lead came: dark, with a soft bevel highlight along its middle
    lead = smoothstep(3.5, 6.0, -gap + 9.0)
    bevel = smoothstep(0.0, 2.5, 2.5 - gap) * 0.12
    lead_colour = np.array([0.06, 0.06, 0.07], np.float32) + bevel[..., None]
    img = over(glass, lead_colour, lead)
    img *= (0.96 + 0.08 * rng.random((SIZE, SIZE), dtype=np.float32))[..., None]
    return img


def make_graffiti(rng: np.random.Generator) -> Array:
    """Street art: neon spray strokes and bubble blobs, black outlines, drips, grey concrete."""
    yy, xx = pixel_grid()
    # concrete wall: mottled grey, grain, pits, block joints
    base = 0.52 + 0.16 * (fbm(rng, base=4, octaves=6) - 0.5)
    base += 0.06 * (rng.random((SIZE, SIZE), dtype=np.float32) - 0.5)
    pits = blur((rng.random((SIZE, SIZE)) > 0.997).astype(np.float32), 0.8) * 3.0
    base -= np.clip(pits, 0, 0.2)
    joints = np.minimum(
        np.abs(((yy + 40) % 128) - 64), np.abs(((xx + 20 * (yy // 128)) % 256) - 128)
    )
    base -= 0.12 * smoothstep(62.0, 64.0, joints)
    wall = base[..., None] * np.array([1.0, 0.985, 0.95], np.float32)
    grain = 0.9 + 0.2 * blur(rng.random((SIZE, SIZE), dtype=np.float32), 0.7)

    neon = colours("ff1f8e 7dff1a 00e5ff ff7a00 ffe600 9b30ff ff2b2b 1a6bff")
    black = np.zeros(3, np.float32)
    white = np.ones(3, np.float32)
    img = wall.copy()

    # faded older layers of paint
    for _ in range(5):
        m = Mask(1)
        m.polygon(blob_outline(rng, *rng.uniform(0, SIZE, 2), rng.uniform(60, 130), 0.6))
        img = over(img, neon[rng.integers(len(neon))] * 0.8, blur(m.array(), 4.0) * 0.3)

    def spray(img: Array, path: Array, width: float, colour: Array, outline: bool) -> Array:
        if outline:
            m = Mask()
            m.line(path, width + 10)
            img = over(img, black, blur(m.array(), 1.2) * 0.95)
        m = Mask()
        m.line(path, width)
        core = blur(m.array(), 1.5)
        mist = blur(core, 7.0) * (rng.random((SIZE, SIZE), dtype=np.float32) > 0.55) * 0.5
        return over(img, colour, np.clip(core + mist, 0, 1) * grain)

    def drips(img: Array, shape: Array, colour: Array, count: int) -> Array:
        ys, xs = np.nonzero(shape > 0.9)
        if len(ys) == 0:
            return img
        pick = rng.integers(0, len(ys), count)
        m = Mask()
        for x, y in zip(xs[pick], ys[pick], strict=True):
            # start at the lowest painted pixel of this column: paint runs off the bottom edge
            col = np.nonzero(shape[:, x] > 0.9)[0]
            y = col[col >= y].max()
            length = rng.uniform(20, 110)
            w = rng.uniform(2.5, 5.0)
            m.line(np.array([[x, y - 4], [x + rng.uniform(-2, 2), y + length]]), w)
            m.disc(x, y + length, w * 0.75)
        return over(img, colour, m.array())

    for i in range(9):
        # bubble blob with outline, two-tone fade fill, highlight and drips
        cx, cy = rng.uniform(20, SIZE - 20, 2)
        outline = blob_outline(rng, cx, cy, rng.uniform(40, 95), 0.9)
        m = Mask()
        m.polygon(outline)
        inner = m.array()
        outer = np.clip(blur(inner, 5.0) * 4.0, 0, 1)
        c1, c2 = (neon[j] for j in rng.choice(len(neon), 2, replace=False))
        fade = smoothstep(cy - 60, cy + 60, yy + 20 * (smooth_noise(rng, 8) - 0.5))[..., None]
        fill = c1 * (1 - fade) + c2 * fade
        shadow = Mask()
        shadow.polygon(outline + rng.uniform(6, 10))
        img = over(img, rgb("#1c0a2a"), np.clip(blur(shadow.array(), 5.0) * 4.0, 0, 1) * 0.85)
        img = over(img, black, outer)
        img = over(img, fill, inner * grain)
        hl = Mask()
        k = outline[10:45] - (outline[10:45] - [cx, cy]) * 0.22
        hl.line(k, 5)
        img = over(img, white, hl.array() * 0.9)
        img = drips(img, inner, fill[int(min(cy + 40, SIZE - 1)), int(cx)], 5)

        # a couple of spray strokes per layer
        for _ in range(2):
            path = wander(rng, rng.uniform(0, SIZE, 2), 120, 3.0, 0.05)
            colour = neon[rng.integers(len(neon))]
            img = spray(img, path, rng.uniform(10, 26), colour, outline=bool(i % 2))
        if i == 5:
            img = drips(img, inner, c1, 2)

    # black marker tags and white highlight scribbles on top
    for k in range(6):
        path = wander(rng, rng.uniform(40, SIZE - 40, 2), 90, 2.5, 0.35)
        m = Mask()
        m.line(path, rng.uniform(2.5, 4.5))
        img = over(img, white if k % 3 == 0 else black, m.array())

    # splatter
    m = Mask()
    for x, y, r in zip(*rng.uniform(0, SIZE, (2, 120)), rng.exponential(1.6, 120), strict=True):
        m.disc(x, y, 0.6 + r)
    img = over(img, neon[0], m.array() * 0.9)
    return img


def make_pointillism(rng: np.random.Generator) -> Array:
    """Seurat-like landscape made of small dabs of pure and complementary colour."""
    yy, xx = pixel_grid()
    v = yy / SIZE
    n1 = fbm(rng, base=3, octaves=5)
    n2 = fbm(rng, base=6, octaves=4)
    horizon = 0.38 + 0.05 * (smooth_noise(rng, 4) - 0.5)
    shore = 0.58 + 0.06 * (smooth_noise(rng, 3) - 0.5)

    sky = over(
        np.broadcast_to(rgb("#7fa6e6"), (SIZE, SIZE, 3)),
        rgb("#f6e2a2"),
        smoothstep(0.0, 1.0, v / horizon) ** 1.5,
    )
    water = over(
        np.broadcast_to(rgb("#2f64c8"), (SIZE, SIZE, 3)), rgb("#8fb6ea"), smoothstep(0.45, 0.8, n2)
    )
    grass = over(
        np.broadcast_to(rgb("#6aa52a"), (SIZE, SIZE, 3)), rgb("#e3d24a"), smoothstep(0.35, 0.75, n1)
    )
    grass = over(grass, rgb("#2f5a2a"), smoothstep(0.58, 0.7, n2) * 0.8)  # shadows
    field = over(sky, water, smoothstep(0.0, 0.01, v - horizon))
    field = over(field, grass, smoothstep(0.0, 0.01, v - shore))
    # trees: dark green masses standing on the horizon
    trees = Mask(1)
    for cx in (70, 150, 400, 470):
        top = horizon.mean() * SIZE
        trees.polygon(blob_outline(rng, cx, top - 40, rng.uniform(40, 70), 0.5))
        trees.polygon(
            np.array(
                [
                    [cx - 8, top - 20],
                    [cx + 8, top - 20],
                    [cx + 6, shore.mean() * SIZE],
                    [cx - 6, shore.mean() * SIZE],
                ]
            )
        )
    tree_col = over(np.broadcast_to(rgb("#1f4a2e"), (SIZE, SIZE, 3)), rgb("#4f8a3a"), n2)
    field = over(field, tree_col, blur(trees.array(), 2.0))

    # complementary accents: orange in blue, violet in yellow/green, red in green
    accents = {
        "blue": np.stack([rgb("#ff8c2a"), rgb("#f2c230"), rgb("#c054c8")]),
        "green": np.stack([rgb("#d8382a"), rgb("#7a3ab8"), rgb("#f29a2a")]),
        "light": np.stack([rgb("#9a6ad8"), rgb("#f7f3e0"), rgb("#ff9a6a")]),
    }

    scale = 2
    canvas = Image.new("RGB", (SIZE * scale, SIZE * scale), (238, 230, 208))
    draw = ImageDraw.Draw(canvas)
    passes = ((9000, 3.6, 0.08), (14000, 2.8, 0.28), (9000, 2.1, 0.38))
    for count, radius, accent_p in passes:
        pts = rng.uniform(0, SIZE - 1, (count, 2))
        ix, iy = pts[:, 0].astype(int), pts[:, 1].astype(int)
        base = field[iy, ix]
        cols = base + rng.normal(0, 0.07, (count, 3))
        lum = base.mean(axis=1)
        kind = np.where(base[:, 2] > base[:, 1] + 0.05, 0, np.where(lum > 0.62, 2, 1))
        choice = rng.integers(0, 3, count)
        pure = np.stack([accents["blue"], accents["green"], accents["light"]])[kind, choice]
        use = rng.random(count) < accent_p
        cols[use] = pure[use] * 0.85 + base[use] * 0.15
        cols = np.clip(cols * 255 + 0.5, 0, 255).astype(np.uint8)
        rx = radius * rng.uniform(0.75, 1.25, count) * scale
        ry = rx * rng.uniform(0.7, 1.3, count)
        for (x, y), rxx, ryy, c in zip(pts * scale, rx, ry, cols.tolist(), strict=True):
            draw.ellipse((x - rxx, y - ryy, x + rxx, y + ryy), fill=tuple(c))
    img = np.asarray(canvas.resize((SIZE, SIZE), Image.Resampling.LANCZOS), np.float32) / 255.0
    canvas_weave = 0.97 + 0.03 * np.sin(xx * 2.2) * np.sin(yy * 2.2)
    return img * canvas_weave[..., None]


def hash01(a: Array, b: Array | float) -> Array:
    """Deterministic pseudo-random value in [0, 1) per (a, b) integer pair (vectorised)."""
    x = np.sin(np.asarray(a, np.float64) * 12.9898 + np.asarray(b, np.float64) * 78.233)
    return (x * 43758.5453) % 1.0


def make_ink(rng: np.random.Generator) -> Array:
    """Pen-and-ink: cross-hatched tones, dry-brush calligraphic strokes, warm paper."""
    yy, xx = pixel_grid()
    paper = rgb("#efe3c6") * (0.94 + 0.1 * fbm(rng, base=3, octaves=6))[..., None]
    paper *= (0.97 + 0.06 * blur(rng.random((SIZE, SIZE), dtype=np.float32), 0.8))[..., None]
    fibres = Mask(1)
    for _ in range(160):
        fibres.line(wander(rng, rng.uniform(0, SIZE, 2), 25, 1.5, 0.15), 1)
    paper *= (1.0 - 0.05 * fibres.array())[..., None]
    stain = smoothstep(0.6, 0.9, fbm(rng, base=2, octaves=4))
    paper = over(paper, rgb("#c9a46a"), stain * 0.25)
    # diluted ink wash for mid tones, with a darker rim where it dried
    wash = (fbm(rng, base=3, octaves=5) > 0.62).astype(np.float32)
    wash = blur(wash, 2.0) * 0.22 + np.clip(blur(wash, 1.0) - blur(wash, 4.0), 0, 1) * 0.25
    paper *= 1.0 - wash[..., None] * (1.0 - rgb("#5e564c"))

    # hatching: short tapered parallel strokes; more directions where the tone is darker
    tone = 0.65 * fbm(rng, base=2, octaves=5) + 0.35 * smoothstep(
        0.0, 1.0, 1.0 - np.hypot(xx - 180, yy - 300) / 300.0
    )
    tone = (tone - tone.min()) / (tone.max() - tone.min())
    wob = 1.0 * (smooth_noise(rng, 8) - 0.5) + 0.25 * (smooth_noise(rng, 48) - 0.5)
    pressure = 0.8 + 0.4 * smooth_noise(rng, 16)
    ink = np.zeros((SIZE, SIZE), np.float32)
    layers = (
        (0.40, 0.79, 6.5, 34.0),
        (0.56, -0.79, 6.5, 28.0),
        (0.70, 0.05, 5.0, 22.0),
        (0.82, 1.4, 4.5, 18.0),
    )
    for threshold, angle, spacing, seg_len in layers:
        u = xx * np.cos(angle) + yy * np.sin(angle) + wob * spacing
        idx = np.floor(u / spacing)
        along = (xx * -np.sin(angle) + yy * np.cos(angle)) / seg_len + hash01(idx, angle)
        pos = along % 1.0
        taper = smoothstep(0.0, 0.15, pos) * smoothstep(0.0, 0.1, 0.95 - pos)
        keep = hash01(idx, np.floor(along)) > 0.15
        dist = np.abs((u / spacing) % 1.0 - 0.5) * spacing
        half = (0.5 + 0.6 * tone) * pressure * taper
        line = np.clip(half - dist + 0.5, 0.0, 1.0) * keep
        region = smoothstep(threshold, threshold + 0.03, tone + 0.1 * (smooth_noise(rng, 20) - 0.5))
        ink = np.maximum(ink, line * region)

    # brush strokes: solid, tapered body that splits into dry bristle marks at the tail
    brush = Mask()
    for _ in range(7):
        n = int(rng.integers(90, 170))
        path = wander(rng, rng.uniform(50, SIZE - 50, 2), n, 2.6, 0.07)
        t = np.linspace(0, 1, n)
        wmax = rng.uniform(10, 26)
        width = wmax * np.clip(t / 0.08, 0.15, 1.0) * (1.0 - 0.5 * t)
        body = int(n * rng.uniform(0.45, 0.65))
        brush.polygon(ribbon(path[:body], width[:body]))
        d = np.gradient(path, axis=0)
        normal = np.stack([-d[:, 1], d[:, 0]], 1) / np.hypot(d[:, 0], d[:, 1])[:, None]
        for off in np.linspace(-0.45, 0.45, 11):
            end = int(n * rng.uniform(0.6, 1.0))
            bristle = path + normal * (off * width)[:, None]
            brush.line(bristle[body - 5 : end], wmax / 9.0)
    for x, y in rng.uniform(30, SIZE - 30, (6, 2)):  # drops with satellites
        brush.disc(x, y, rng.uniform(3, 8))
        for dx, dy in rng.normal(0, 14, (8, 2)):
            brush.disc(x + dx, y + dy, rng.uniform(0.6, 2.0))
    ink = np.maximum(ink, brush.array())

    ink = np.maximum(ink, 0.25 * blur(ink, 1.5))  # slight bleed into the paper
    return paper * (1.0 - ink[..., None] * (1.0 - rgb("#14110f")))


def make_neon(rng: np.random.Generator) -> Array:
    """Glowing neon tubes: Lissajous and sine curves with layered blur glow on near-black."""
    yy, xx = pixel_grid()
    haze = 0.04 * fbm(rng, base=3, octaves=5)
    img = np.stack([haze * 0.5, haze * 0.4, haze * 1.2], axis=-1) + 0.01
    bricks = np.minimum(np.abs((yy % 32) - 16), np.abs(((xx + 32 * (yy // 32 % 2)) % 64) - 32))
    img *= (0.8 + 0.4 * smoothstep(14.0, 15.5, bricks))[..., None]

    tubes = colours("ff2ad4 00f0ff 39ff14 ff5e00 ffe81a 7a3cff ff1744 00a2ff")
    t = np.linspace(0, 2 * np.pi, 3000)
    light = np.zeros((SIZE, SIZE, 3), np.float32)
    shapes = []
    for _ in range(6):
        a, b = rng.choice([1, 2, 3, 4, 5], 2, replace=False)
        cx, cy = rng.uniform(90, SIZE - 90, 2)
        ax, ay = rng.uniform(60, 170, 2)
        pts = np.stack(
            [cx + ax * np.sin(a * t + rng.uniform(0, np.pi)), cy + ay * np.sin(b * t)], 1
        )
        shapes.append(pts)
    for _ in range(4):
        x = np.linspace(-10, SIZE + 10, 800)
        k, amp, y0 = rng.uniform(0.01, 0.05), rng.uniform(15, 60), rng.uniform(30, SIZE - 30)
        shapes.append(np.stack([x, y0 + amp * np.sin(k * x + rng.uniform(0, 6.3))], 1))
    for i, pts in enumerate(shapes):
        m = Mask()
        m.line(pts, rng.uniform(2.0, 3.5))
        core = m.array()
        c = tubes[i % len(tubes)]
        glow = 0.9 * blur(core, 3.0) + 0.8 * blur(core, 9.0) + 0.6 * blur(core, 24.0)
        light += c * (core + glow)[..., None] + (1.0 - c) * (0.45 * core)[..., None]
    # sparkles
    m = Mask()
    for x, y in rng.uniform(0, SIZE, (60, 2)):
        m.disc(x, y, rng.uniform(0.6, 1.6))
    sp = m.array()
    light += (sp + 1.5 * blur(sp, 4.0))[..., None] * rgb("#c8e8ff")
    return img + (1.0 - np.exp(-1.6 * light))


def make_watercolor(rng: np.random.Generator) -> Array:
    """Transparent watercolour glazes: wet-in-wet colour, dark dried rims, blooms, paper grain."""
    yy, xx = pixel_grid()
    grain = blur(rng.random((SIZE, SIZE), dtype=np.float32), 1.0)
    grain = (grain - grain.mean()) / grain.std()
    tooth = blur(rng.random((SIZE, SIZE), dtype=np.float32), 3.0)
    tooth = (tooth - tooth.mean()) / tooth.std()
    paper = rgb("#f8f4ea") * (1.0 + 0.012 * grain + 0.02 * tooth)[..., None]

    palette = colours("2f4fd0 3fa0e0 d82a50 c8642a f0b830 4f9a2a 7a4fa8 c8308a")

    def pigments() -> Array:
        """Two pigments mingling wet-in-wet."""
        c1, c2 = (palette[i] for i in rng.choice(len(palette), 2, replace=False))
        mix = smoothstep(0.3, 0.7, smooth_noise(rng, 3))[..., None]
        return c1 * (1 - mix) + c2 * mix

    def glaze(img: Array, shape: Array, colour: Array, density: float, soft: bool) -> Array:
        wet = blur(shape, 6.0 if soft else 1.0)
        rim = 0.0 if soft else np.clip(wet - blur(wet, 4.0), 0.0, 1.0) * 1.4
        settle = 1.0 + 0.12 * np.clip(-grain, -1, 2.5) + 0.08 * tooth  # granulation
        flow = 0.55 + 0.6 * fbm(rng, base=3, octaves=4)
        alpha = np.clip((wet * density * flow + rim * density) * settle, 0, 1)
        return img * (1.0 - alpha[..., None] * (1.0 - colour))

    img = paper.copy()
    # broad washes: sky from the top, ground from the bottom, wavy edges
    for top, colour in ((True, palette[1]), (False, palette[4])):
        edge = (150 if top else 330) + 90 * (smooth_noise(rng, 3) - 0.5)
        shape = (yy < edge if top else yy > edge).astype(np.float32)
        img = glaze(img, shape, colour, 0.35, soft=top)
    # pooled shapes, some hard-edged (dried rim), some soft
    for i in range(11):
        cx, cy = rng.uniform(0, SIZE, 2)
        d = np.hypot((xx - cx) / rng.uniform(0.7, 1.4), yy - cy) / rng.uniform(45, 130)
        shape = ((1.0 - d + 0.9 * (fbm(rng, 4, 4) - 0.5)) > 0).astype(np.float32)
        img = glaze(img, shape, pigments(), rng.uniform(0.35, 0.65), soft=i % 3 == 0)
    # tapered brush strokes
    for _ in range(7):
        n = int(rng.integers(50, 110))
        path = wander(rng, rng.uniform(0, SIZE, 2), n, 3.0, 0.05)
        t = np.linspace(0, 1, n)
        width = rng.uniform(12, 30) * np.sin(np.pi * np.clip(t, 0.03, 0.97)) ** 0.5
        m = Mask()
        m.polygon(ribbon(path, width))
        img = glaze(img, m.array(), palette[rng.integers(len(palette))], 0.6, soft=False)
    # blooms (backruns): lighter patches with a hard cauliflower rim
    for _ in range(4):
        cx, cy = rng.uniform(60, SIZE - 60, 2)
        d = np.hypot(xx - cx, yy - cy) / rng.uniform(25, 55) + 0.6 * (smooth_noise(rng, 24) - 0.5)
        bloom = (d < 1.0).astype(np.float32)
        img = img + (paper - img) * (0.4 * blur(bloom, 1.0))[..., None]
        img *= (1.0 - 0.2 * np.clip(blur(bloom, 0.8) - blur(bloom, 3.0), 0, 1))[..., None]
    # splatter
    m = Mask()
    for x, y in rng.uniform(0, SIZE, (25, 2)):
        m.disc(x, y, 0.6 + rng.exponential(1.2))
    return glaze(img, m.array(), palette[0], 0.7, soft=False)


STYLES = {
    "mosaic": (make_mosaic, 101),
    "graffiti": (make_graffiti, 202),
    "pointillism": (make_pointillism, 303),
    "ink": (make_ink, 404),
    "neon": (make_neon, 505),
    "watercolor": (make_watercolor, 606),
}


# --------------------------------------------------------------------------- output


def save(name: str, image: Array) -> Path:
    """Write PNG, or JPEG q90 if the PNG would exceed PNG_LIMIT; remove the other format."""
    pixels = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    if buf.tell() <= PNG_LIMIT:
        path, stale = OUT_DIR / f"{name}.png", OUT_DIR / f"{name}.jpg"
        path.write_bytes(buf.getvalue())
    else:
        path, stale = OUT_DIR / f"{name}.jpg", OUT_DIR / f"{name}.png"
        img.save(path, format="JPEG", quality=90)
    stale.unlink(missing_ok=True)
    return path


def main() -> None:
    for name, (make, seed) in STYLES.items():
        path = save(name, make(np.random.default_rng(seed)))
        print(f"{path.name}: {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
