"""The reference host: drives one effect instance through the OpenFX-style life cycle.

Per frame it asks the effect for its region of definition, the frames it needs and, per render
window, its regions of interest; hands it the Source pixels of that region (read only), its own
earlier outputs, and an Output image; and checks that the render wrote nothing outside its
window. ``render_video`` runs it over a video with the same PyAV I/O as ``vstpipe render``
(audio and subtitles copied as packets, the output renamed into place only on success).
"""

from __future__ import annotations

import threading
import time as clock
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import driver, ofx
from .errors import EffectError, MediaError, OptionError, VstpipeError
from .media import (
    EncodeOptions,
    Frame,
    check_encode_options,
    check_output_path,
    open_sink,
    open_source,
)
from .ofx import OUTPUT, SOURCE, Image, Rect


@dataclass(frozen=True)
class HostOptions:
    context: str = "filter"  # filter | general
    depth: str | None = None  # pixel depth to render at; None: the source's, if supported
    tiles: tuple[int, int] = (1, 1)  # render windows per frame: columns, rows
    history: int = 64  # most frames back an effect may read (bounds the memory kept)


def parse_tiles(text: str) -> tuple[int, int]:
    """'2x2' -> (2, 2); OptionError names the value and the form."""
    try:
        columns, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise OptionError(f"--tiles '{text}': use COLUMNSxROWS, e.g. 2x2") from None
    if not (1 <= columns <= 64 and 1 <= rows <= 64):
        raise OptionError(f"--tiles '{text}': use 1 to 64 columns and rows")
    return columns, rows


def pick_depth(supported: tuple[str, ...], wanted: str | None, source_bits: int) -> str:
    """The requested depth, else the source's (byte for 8-bit, short for deeper), else the
    deepest the effect supports."""
    if wanted is not None:
        if wanted not in supported:
            raise OptionError(f"--depth {wanted}: this effect supports "
                              f"{', '.join(supported)}")
        return wanted
    order = ("byte", "short", "float", "half") if source_bits <= 8 else \
        ("short", "float", "half", "byte")
    return next(d for d in order if d in supported)


def _guard(rod: Rect, depth: str) -> np.ndarray:
    """A noise pattern no effect writes by chance: what the Output holds outside the window."""
    rng = np.random.default_rng(rod.width * 7919 + rod.height)
    shape = (rod.height, rod.width, 4)
    if depth in ("byte", "short"):
        info = np.iinfo(ofx.DEPTH_DTYPES[depth])
        return rng.integers(0, info.max + 1, size=shape, dtype=ofx.DEPTH_DTYPES[depth])
    return rng.uniform(-4.0, 4.0, size=shape).astype(ofx.DEPTH_DTYPES[depth])


def _outside(rod: Rect, window: Rect) -> list[Rect]:
    """The parts of ``rod`` around ``window``: below, above, left and right of it."""
    w = window.intersect(rod)
    bands = [Rect(rod.x1, rod.y1, rod.x2, w.y1), Rect(rod.x1, w.y2, rod.x2, rod.y2),
             Rect(rod.x1, w.y1, w.x1, w.y2), Rect(w.x2, w.y1, rod.x2, w.y2)]
    return [b for b in bands if not b.empty]


def _read_only(image: Image, region: Rect) -> Image:
    view = image.view(region).view()
    view.flags.writeable = False
    return Image(view, region, image.depth)


class HostClip:
    """A clip as the instance sees it: history by time, the current target per thread."""

    def __init__(self, name: str, depth: str, frame_rate: float,
                 frame_range: tuple[float, float], rod: Rect) -> None:
        self.name, self.depth = name, depth
        self.frame_rate, self.frame_range = frame_rate, frame_range
        self.rod = rod
        self.frames: dict[float, Image] = {}  # time -> full-frame image
        self.now = threading.local()  # per render call: .time, .region, .target

    def region_of_definition(self, time: float) -> Rect:
        return self.rod

    def image(self, time: float, region: Rect | None = None) -> Image | None:
        now_time = getattr(self.now, "time", None)
        if self.name == OUTPUT and time == now_time:
            return self.now.target
        frame = self.frames.get(float(time))
        if frame is None:
            return None
        if self.name == SOURCE and time == now_time:
            region = self.now.region  # what the effect declared for this window
        return _read_only(frame, (region or self.rod).intersect(self.rod))

    def forget_before(self, oldest: float) -> None:
        for t in [t for t in self.frames if t < oldest]:
            del self.frames[t]


class HostInstance:
    """What an effect instance holds: context, parameters and clips (ofx.Instance)."""

    def __init__(self, context: str, params: ofx.ParamSet, clips: Mapping[str, HostClip]) -> None:
        self.context, self.params, self.clips = context, params, dict(clips)

    def clip(self, name: str) -> HostClip:
        if name not in self.clips:
            raise EffectError(f"no clip '{name}'; this instance has {', '.join(self.clips)}")
        return self.clips[name]


class Host:
    """One effect instance over one sequence of frames of a fixed size."""

    def __init__(self, effect: type[ofx.Effect], params: ofx.ParamSet, opts: HostOptions,
                 size: tuple[int, int], frame_rate: float, frame_range: tuple[float, float],
                 depth: str) -> None:
        self.name = effect.identifier
        self.desc = ofx.describe(effect, opts.context)
        self.opts, self.depth = opts, depth
        self.rod = Rect(0, 0, *size)
        clips = {c: HostClip(c, depth, frame_rate, frame_range, self.rod)
                 for c in (SOURCE, OUTPUT)}
        self.instance = HostInstance(opts.context, params, clips)
        self.effect = self._call("create instance", lambda: effect(self.instance))
        self._lock = threading.Lock()  # serialises render calls unless fully thread-safe
        self._guard = _guard(self.rod, depth)
        self.sequence = ofx.SequenceArgs(frame_range)

    def _call(self, action: str, fn: Callable[[], object]) -> object:
        """Run one action; any failure becomes an EffectError naming the effect."""
        try:
            return fn()
        except EffectError:
            raise
        except (Exception, SystemExit) as exc:  # re-raised as one line naming the effect
            kind = "" if isinstance(exc, VstpipeError) else f"{type(exc).__name__}: "
            first = (str(exc).strip().splitlines() or [""])[0]
            raise EffectError(f"effect {self.name} failed in {action}: {kind}{first}") from exc

    def begin(self) -> None:
        self._call("begin sequence render", lambda: self.effect.begin_sequence_render(
            self.sequence))

    def end(self) -> None:
        self._call("end sequence render", lambda: self.effect.end_sequence_render(self.sequence))

    def destroy(self) -> None:
        self._call("destroy instance", self.effect.destroy)

    def _lookback(self, time: float) -> float:
        """Oldest time to keep, from frames_needed; EffectError past the history bound."""
        needed = self._call("get frames needed", lambda: self.effect.frames_needed(time))
        oldest = time
        for clip, ranges in dict(needed).items():
            self.instance.clip(clip)
            for first, _last in ranges:
                oldest = min(oldest, float(first))
        if time - oldest > self.opts.history:
            raise EffectError(f"effect {self.name} asks for frames {time - oldest:g} back; "
                              f"this host keeps at most {self.opts.history}")
        return oldest

    def add_source(self, time: float, image: Image) -> None:
        """A Source frame the host has (the current one, or earlier ones a client sends)."""
        self.instance.clip(SOURCE).frames[float(time)] = image

    def render(self, time: float, window: Rect | None = None) -> Image:
        """Render ``window`` (default: the whole frame) at ``time``; returns the Output image
        of the whole region of definition with the window filled. The Source frame at
        ``time`` must have been added."""
        rod = self._call("get region of definition",
                         lambda: self.effect.region_of_definition(time))
        if rod != self.rod:
            raise EffectError(f"effect {self.name} changes the region of definition to "
                              f"{rod.as_list()}; this host renders at the source's "
                              f"{self.rod.as_list()}")
        oldest = self._lookback(time)
        area = (window or rod).intersect(rod)
        # Windows of one time rendered by separate calls (a client's tiles) add up to one frame.
        out = self.instance.clip(OUTPUT).frames.get(float(time)) or \
            Image(np.zeros_like(self._guard), rod, self.depth)
        windows = ofx.tiles(area, *self.opts.tiles)
        parallel = self.desc.thread_safety == "fully_safe" and len(windows) > 1
        if parallel:
            with ThreadPoolExecutor(min(len(windows), 4)) as pool:
                for win, pixels in zip(windows, pool.map(lambda w: self._tile(time, w),
                                                         windows)):
                    out.view(win)[...] = pixels
        else:
            for win in windows:
                out.view(win)[...] = self._tile(time, win)
        self.instance.clip(OUTPUT).frames[float(time)] = out
        for clip in self.instance.clips.values():
            clip.forget_before(oldest)
        return out

    def _tile(self, time: float, window: Rect) -> np.ndarray:
        """One render call for ``window``; returns its pixels after checking the rest."""
        roi = self._call("get regions of interest",
                         lambda: self.effect.regions_of_interest(time, window))
        region = dict(roi).get(SOURCE, window).intersect(self.rod)
        target = Image(self._guard.copy(), self.rod, self.depth)
        args = ofx.RenderArgs(time, window)
        with self._lock if self.desc.thread_safety != "fully_safe" else nullcontext():
            for clip in self.instance.clips.values():
                clip.now.time, clip.now.region, clip.now.target = time, region, target
            try:
                self._call(f"render at frame {time:g}", lambda: self.effect.render(args))
            finally:
                for clip in self.instance.clips.values():
                    clip.now.time = None
        for band in _outside(self.rod, window):
            if target.pixels.shape != self._guard.shape or \
                    not np.array_equal(target.view(band), self._guard[
                        band.y1:band.y2, band.x1:band.x2]):
                raise EffectError(f"effect {self.name} wrote outside its render window "
                                  f"{window.as_list()} at frame {time:g} (in "
                                  f"{band.as_list()})")
        return target.view(window).copy()


# -- frames <-> images -------------------------------------------------------------------------

def frame_to_image(rgb: np.ndarray, depth: str) -> Image:
    """A video frame's (H, W, 3) top-down RGB (uint8 or uint16) -> an opaque RGBA Image."""
    want = ofx.DEPTH_DTYPES[depth]
    if rgb.dtype == want:
        pixels = rgb
    elif rgb.dtype == np.uint8 and depth == "short":
        pixels = rgb.astype(np.uint16) * 257  # exact: 255 * 257 = 65535
    else:
        pixels = ofx.from_unit(ofx.to_unit(rgb), depth)
    h, w = rgb.shape[:2]
    return Image(ofx.opaque(pixels, depth), Rect(0, 0, w, h), depth)


def image_to_rgb(image: Image, deep: bool) -> np.ndarray:
    """An Output image -> (H, W, 3) top-down RGB, uint16 when ``deep`` else uint8."""
    rgb = image.top_down()[..., :3]
    want = np.uint16 if deep else np.uint8
    if rgb.dtype == want:
        return np.ascontiguousarray(rgb)
    return np.ascontiguousarray(ofx.from_unit(ofx.to_unit(rgb), "short" if deep else "byte"))


def frame_time(frame: Frame, first_pts: int, rate: Fraction) -> float:
    """OpenFX time (frames) from the frame's pts: (pts - first) * time_base * rate; never
    from the frame's place in the stream, so variable frame rates keep their times."""
    if frame.pts is None:
        raise MediaError("a decoded frame has no timestamp; the OpenFX host takes time from "
                         "pts")
    t = (frame.pts - first_pts) * Fraction(frame.time_base) * rate
    return float(round(t, 6))


class _HostStep:
    """The driver's step for an effect: one frame in, the effect's Output frame out."""

    def __init__(self, host: Host, depth: str, deep: bool, rate: Fraction) -> None:
        self.host, self.depth, self.deep, self.rate = host, depth, deep, rate
        self.first_pts: int | None = None  # the first frame's pts: OpenFX time 0

    def __call__(self, batch: list[Frame]) -> list[Frame]:
        (frame,) = batch
        if self.first_pts is None:
            self.first_pts = frame.pts
        t = frame_time(frame, self.first_pts or 0, self.rate)
        self.host.add_source(t, frame_to_image(frame.rgb, self.depth))
        image = self.host.render(t)
        return [Frame(image_to_rgb(image, self.deep), frame.pts, frame.time_base)]


@dataclass(frozen=True)
class HostReport:
    frames: int
    seconds: float
    depth: str


def render_video(effect: type[ofx.Effect], src: Path, out: Path, params: ofx.ParamSet,
                 opts: HostOptions, encode: EncodeOptions | None = None,
                 overwrite: bool = False,
                 progress: Callable[[int, int | None], None] | None = None) -> HostReport:
    """Apply ``effect`` to every frame of ``src`` into ``out``; other streams are copied."""
    encode = encode or EncodeOptions()
    check_encode_options(encode)
    check_output_path(src, out, overwrite)
    with open_source(src) as source:  # opened once: its description sizes the host
        info = source.info
        if encode.size and encode.size != (info.width, info.height):
            raise OptionError("--size: the OFX host renders at the source size")
        if info.average_rate is None:
            raise MediaError(f"{src}: the video states no frame rate; the OpenFX host counts "
                             "time in frames")
        desc = ofx.describe(effect, opts.context)
        depth = pick_depth(desc.depths, opts.depth, info.bit_depth)
        start = clock.perf_counter()
        last = float(info.frames - 1) if info.frames else float("inf")
        host = Host(effect, params, opts, (info.width, info.height),
                    float(info.average_rate), (0.0, last), depth)
        try:
            with open_sink(out, source.plan, encode, overwrite) as sink:
                host.begin()
                step = _HostStep(host, depth, sink.bit_depth > 8, info.average_rate)
                done = driver.run(source, step, sink, 1, progress, info.frames)
                host.end()
        finally:
            host.destroy()
    return HostReport(done, clock.perf_counter() - start, depth)


def params_from_args(desc: ofx.Descriptor, items: list[str]) -> ofx.ParamSet:
    """``--param`` values: ``name=value`` for a constant, ``name@FRAME=value`` for a keyframe
    (animatable parameters; the host interpolates between keyframes)."""
    params = ofx.ParamSet(desc.params)
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise OptionError(f"--param '{item}': use NAME=VALUE or NAME@FRAME=VALUE")
        name, at, when = name.partition("@")
        definition = params.defs.get(name)
        if definition is None:
            params.value(name)  # the error that lists this effect's parameters
        if at:
            try:
                frame = float(when)
            except ValueError:
                raise OptionError(f"--param '{item}': '{when}' is not a frame number") from None
            params.set_keyframe(name, frame, definition.parse(text))
        else:
            params.set(name, definition.parse(text))
    return params
