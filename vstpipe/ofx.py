"""An OpenFX-shaped image effect API: what an effect implements and what a host gives it.

Shaped after the OpenFX Image Effect API 1.5, in Python. The actions map one to one:

=====================================  ===============================================
this API                               OpenFX
=====================================  ===============================================
``Effect.describe(desc)``              kOfxActionDescribe
``Effect.describe_in_context(desc,c)`` kOfxImageEffectActionDescribeInContext
``Effect(instance)``                   kOfxActionCreateInstance
``begin_sequence_render(args)``        kOfxImageEffectActionBeginSequenceRender
``render(args)``                       kOfxImageEffectActionRender
``end_sequence_render(args)``          kOfxImageEffectActionEndSequenceRender
``destroy()``                          kOfxActionDestroyInstance
``region_of_definition(time)``         kOfxImageEffectActionGetRegionOfDefinition
``regions_of_interest(time, window)``  kOfxImageEffectActionGetRegionsOfInterest
``frames_needed(time)``                kOfxImageEffectActionGetFramesNeeded
``instance_changed(name, time)``       kOfxActionInstanceChanged
=====================================  ===============================================

Conventions, as in OpenFX:

- Time is in frames (a float); frame 0 is the clip's first frame.
- Coordinates are pixels with the origin at the bottom left and y up; a rectangle
  ``(x1, y1, x2, y2)`` is half-open. An ``Image`` holds (rows, cols, 4) RGBA with row 0 the
  bottom row (y = bounds.y1), which is how OpenFX lays out memory with positive row bytes.
- Pixel depths are ``byte`` (uint8), ``short`` (uint16), ``half`` (float16) and ``float``
  (float32); the float depths are nominally 0..1. Components are always RGBA.
- A render call must write only its render window of the Output image; the host checks.
- Frames needed may name the Output clip too: an effect with temporal clip access may read its
  own earlier outputs (the reference host keeps them; OpenFX leaves that to the host).

This host renders at render scale 1 and without fields; both are passed for completeness.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from .errors import EffectError, ParamError

CONTEXTS = ("filter", "general")
DEPTHS = ("byte", "short", "half", "float")
DEPTH_DTYPES: dict[str, type[np.generic]] = {
    "byte": np.uint8, "short": np.uint16, "half": np.float16, "float": np.float32}
THREAD_SAFETY = ("unsafe", "instance_safe", "fully_safe")
SEQUENTIAL = ("never", "always", "preferred")  # kOfxImageEffectInstancePropSequentialRender
PARAM_KINDS = ("double", "integer", "boolean", "choice", "string", "file_path")
SOURCE, OUTPUT = "Source", "Output"


# -- rectangles and images ---------------------------------------------------------------------

@dataclass(frozen=True)
class Rect:
    """Integer pixel rectangle, half-open: x1 <= x < x2, y1 <= y < y2 (OfxRectI)."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return max(0, self.x2 - self.x1)

    @property
    def height(self) -> int:
        return max(0, self.y2 - self.y1)

    @property
    def empty(self) -> bool:
        return self.width == 0 or self.height == 0

    def intersect(self, other: Rect) -> Rect:
        return Rect(max(self.x1, other.x1), max(self.y1, other.y1),
                    min(self.x2, other.x2), min(self.y2, other.y2))

    def contains(self, other: Rect) -> bool:
        return (self.x1 <= other.x1 and self.y1 <= other.y1 and
                other.x2 <= self.x2 and other.y2 <= self.y2)

    def as_list(self) -> list[int]:
        return [self.x1, self.y1, self.x2, self.y2]

    @staticmethod
    def parse(values: Any, what: str) -> Rect:
        """A rectangle from [x1, y1, x2, y2] (messages, JSON); ``what`` names it in errors."""
        if not (isinstance(values, list | tuple) and len(values) == 4 and
                all(isinstance(v, int) for v in values)):
            raise ParamError(f"{what}: expected four integers [x1, y1, x2, y2], got {values!r}")
        rect = Rect(*values)
        if rect.x2 < rect.x1 or rect.y2 < rect.y1:
            raise ParamError(f"{what} {values}: x2 and y2 must not be below x1 and y1")
        return rect


def tiles(area: Rect, columns: int, rows: int) -> list[Rect]:
    """``area`` cut into columns x rows windows that cover it exactly, bottom row first."""
    xs = [area.x1 + area.width * i // columns for i in range(columns + 1)]
    ys = [area.y1 + area.height * j // rows for j in range(rows + 1)]
    return [Rect(xs[i], ys[j], xs[i + 1], ys[j + 1])
            for j in range(rows) for i in range(columns)]


@dataclass
class Image:
    """RGBA pixels covering ``bounds``; row 0 is the bottom row, as in OpenFX memory."""

    pixels: np.ndarray  # (bounds.height, bounds.width, 4) of DEPTH_DTYPES[depth]
    bounds: Rect
    depth: str

    def __post_init__(self) -> None:
        want = (self.bounds.height, self.bounds.width, 4)
        if self.pixels.shape != want or self.pixels.dtype != DEPTH_DTYPES[self.depth]:
            raise EffectError(f"image of {self.pixels.shape} {self.pixels.dtype} does not match "
                              f"bounds {self.bounds.as_list()} at depth {self.depth}")

    def view(self, rect: Rect) -> np.ndarray:
        """The pixels of ``rect`` (which must lie inside bounds) as a writable view."""
        if not self.bounds.contains(rect):
            raise EffectError(f"rectangle {rect.as_list()} is outside the image bounds "
                              f"{self.bounds.as_list()}")
        b = self.bounds
        return self.pixels[rect.y1 - b.y1:rect.y2 - b.y1, rect.x1 - b.x1:rect.x2 - b.x1]

    def top_down(self) -> np.ndarray:
        """(rows, cols, 4) with row 0 at the top, as pictures and video frames store it."""
        return self.pixels[::-1]


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """Pixels of any depth -> float32 in nominal 0..1."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / 65535.0
    return pixels.astype(np.float32)


def from_unit(values: np.ndarray, depth: str) -> np.ndarray:
    """float 0..1 -> pixels of ``depth``; integer depths are clamped and rounded."""
    if depth == "byte":
        return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    if depth == "short":
        return np.rint(np.clip(values, 0.0, 1.0) * 65535.0).astype(np.uint16)
    return values.astype(DEPTH_DTYPES[depth])


def opaque(rgb_top_down: np.ndarray, depth: str) -> np.ndarray:
    """(H, W, 3) top-down RGB of ``depth``'s dtype -> (H, W, 4) bottom-up RGBA, alpha = 1."""
    one = {"byte": 255, "short": 65535}.get(depth, 1.0)
    alpha = np.full(rgb_top_down.shape[:2] + (1,), one, dtype=rgb_top_down.dtype)
    return np.ascontiguousarray(np.concatenate([rgb_top_down, alpha], axis=2)[::-1])


# -- parameters --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParamDef:
    """One parameter (OfxParamType*): its kind, default, range and whether it animates."""

    name: str  # script name, as hosts and `--param name=value` use it
    kind: str  # one of PARAM_KINDS
    default: Any
    label: str = ""
    hint: str = ""
    minimum: float | None = None  # double / integer only
    maximum: float | None = None
    options: tuple[str, ...] = ()  # choice only
    animatable: bool = False  # double and integer may animate; the host interpolates linearly

    def __post_init__(self) -> None:
        if self.kind not in PARAM_KINDS:
            raise EffectError(f"parameter '{self.name}': kind '{self.kind}' is not one of "
                              f"{', '.join(PARAM_KINDS)}")
        if self.animatable and self.kind not in ("double", "integer"):
            raise EffectError(f"parameter '{self.name}': only double and integer animate")
        self.check(self.default)

    def check(self, value: Any) -> Any:
        """``value`` coerced to this parameter's type; ParamError names the valid values."""
        kind, name = self.kind, self.name
        if kind in ("double", "integer"):
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not math.isfinite(value) or (kind == "integer" and value != int(value)):
                raise ParamError(f"parameter '{name}': {value!r} is not a finite {kind}")
            value = int(value) if kind == "integer" else float(value)
            low = -math.inf if self.minimum is None else self.minimum
            high = math.inf if self.maximum is None else self.maximum
            if not low <= value <= high:
                raise ParamError(f"parameter '{name}': {value} is outside [{low}, {high}]")
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise ParamError(f"parameter '{name}': {value!r} is not true or false")
            return value
        if not isinstance(value, str):
            raise ParamError(f"parameter '{name}': {value!r} is not a string")
        if kind == "choice" and value not in self.options:
            raise ParamError(f"parameter '{name}': '{value}' is not one of "
                             f"{', '.join(self.options)}")
        return value

    def parse(self, text: str) -> Any:
        """A value from command-line text (``--param name=TEXT``)."""
        if self.kind in ("double", "integer"):
            try:
                number = float(text)
            except ValueError:
                raise ParamError(f"parameter '{self.name}': '{text}' is not a number") from None
            return self.check(int(number) if self.kind == "integer" and number.is_integer()
                              else number)
        if self.kind == "boolean":
            words = {"true": True, "1": True, "yes": True, "on": True,
                     "false": False, "0": False, "no": False, "off": False}
            if text.lower() not in words:
                raise ParamError(f"parameter '{self.name}': '{text}' is not true or false")
            return words[text.lower()]
        return self.check(text)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.kind, "label": self.label or
                               self.name, "hint": self.hint, "default": self.default,
                               "animatable": self.animatable}
        if self.kind in ("double", "integer"):
            out["min"], out["max"] = self.minimum, self.maximum
        if self.kind == "choice":
            out["options"] = list(self.options)
        return out


def double(name: str, default: float, minimum: float | None = None,
           maximum: float | None = None, hint: str = "", label: str = "",
           animatable: bool = True) -> ParamDef:
    return ParamDef(name, "double", float(default), label, hint, minimum, maximum, (), animatable)


def integer(name: str, default: int, minimum: int | None = None, maximum: int | None = None,
            hint: str = "", label: str = "", animatable: bool = False) -> ParamDef:
    return ParamDef(name, "integer", default, label, hint, minimum, maximum, (), animatable)


def boolean(name: str, default: bool, hint: str = "", label: str = "") -> ParamDef:
    return ParamDef(name, "boolean", default, label, hint)


def choice(name: str, options: tuple[str, ...], default: str | None = None, hint: str = "",
           label: str = "") -> ParamDef:
    return ParamDef(name, "choice", options[0] if default is None else default, label, hint,
                    options=options)


def string(name: str, default: str = "", hint: str = "", label: str = "") -> ParamDef:
    return ParamDef(name, "string", default, label, hint)


def file_path(name: str, default: str = "", hint: str = "", label: str = "") -> ParamDef:
    return ParamDef(name, "file_path", default, label, hint)


class ParamSet:
    """Parameter values as the host holds them: a constant or keyframes per parameter.

    Animated doubles interpolate linearly between keyframes and hold outside them; integers
    interpolate and round. Not thread-safe for writes: hosts change values between renders.
    """

    def __init__(self, defs: Mapping[str, ParamDef]) -> None:
        self.defs = dict(defs)
        self._keys: dict[str, list[tuple[float, Any]]] = {
            name: [(0.0, d.default)] for name, d in self.defs.items()}
        self._animated: set[str] = set()  # parameters given keyframes rather than one value

    def _def(self, name: str) -> ParamDef:
        if name not in self.defs:
            raise ParamError(f"unknown parameter '{name}'; this effect has "
                             f"{', '.join(self.defs) or 'no parameters'}")
        return self.defs[name]

    def set(self, name: str, value: Any) -> None:
        """A constant value for every time (drops any keyframes)."""
        self._keys[name] = [(0.0, self._def(name).check(value))]
        self._animated.discard(name)

    def set_keyframe(self, name: str, time: float, value: Any) -> None:
        d = self._def(name)
        if not d.animatable:
            raise ParamError(f"parameter '{name}' does not animate; set one value with "
                             f"--param {name}=VALUE")
        keys = [k for k in self._keys[name] if k[0] != time] if self.animated(name) else []
        bisect.insort(keys, (float(time), d.check(value)), key=lambda k: k[0])
        self._keys[name] = keys
        self._animated.add(name)

    def animated(self, name: str) -> bool:
        return name in self._animated

    def value(self, name: str, time: float = 0.0) -> Any:
        d, keys = self._def(name), self._keys[name]
        times = [k[0] for k in keys]
        i = bisect.bisect_right(times, time)
        if i == 0 or i == len(keys):
            return keys[max(i - 1, 0)][1]
        (t0, v0), (t1, v1) = keys[i - 1], keys[i]
        mixed = v0 + (v1 - v0) * (time - t0) / (t1 - t0)
        return round(mixed) if d.kind == "integer" else mixed

    def constant_values(self) -> dict[str, Any]:
        """Every parameter's value at time 0 (what non-animated parameters hold)."""
        return {name: self.value(name, 0.0) for name in self.defs}


# -- descriptors -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipDef:
    """An input or output clip (OfxImageClipHandle properties)."""

    name: str  # "Source" and "Output" in the filter context
    optional: bool = False
    temporal_access: bool = False  # the effect reads this clip at other times than the render's
    supports_tiles: bool = True


@dataclass
class Descriptor:
    """What describe / describe_in_context fill in (the effect descriptor's property set)."""

    identifier: str  # reverse-domain, e.g. "org.vstpipe.stylize"
    label: str = ""
    grouping: str = ""  # menu path in a host, e.g. "vstpipe/Stylize"
    version: tuple[int, int] = (1, 0)
    description: str = ""
    contexts: tuple[str, ...] = CONTEXTS
    depths: tuple[str, ...] = DEPTHS  # supported pixel depths
    supports_tiles: bool = True
    temporal_clip_access: bool = False
    sequential_render: str = "never"  # one of SEQUENTIAL
    thread_safety: str = "instance_safe"  # one of THREAD_SAFETY
    clips: dict[str, ClipDef] = field(default_factory=dict)
    params: dict[str, ParamDef] = field(default_factory=dict)

    def define_clip(self, clip: ClipDef) -> None:
        self.clips[clip.name] = clip

    def define_param(self, param: ParamDef) -> None:
        if param.name in self.params:
            raise EffectError(f"{self.identifier}: parameter '{param.name}' defined twice")
        self.params[param.name] = param

    def validate(self) -> None:
        """The rules a host relies on; EffectError names the effect and the broken rule."""
        bad = [(key, value, valid) for key, value, valid in (
            ("context", c, CONTEXTS) for c in self.contexts)] + [
            ("pixel depth", d, DEPTHS) for d in self.depths] + [
            ("sequential_render", self.sequential_render, SEQUENTIAL),
            ("thread_safety", self.thread_safety, THREAD_SAFETY)]
        for key, value, valid in bad:
            if value not in valid:
                raise EffectError(f"{self.identifier}: {key} '{value}' is not one of "
                                  f"{', '.join(valid)}")
        if not self.contexts or not self.depths:
            raise EffectError(f"{self.identifier}: declares no contexts or no pixel depths")
        if OUTPUT not in self.clips or SOURCE not in self.clips:
            raise EffectError(f"{self.identifier}: needs a '{SOURCE}' and an '{OUTPUT}' clip")

    def to_json(self, context: str) -> dict[str, Any]:
        return {
            "identifier": self.identifier, "label": self.label or self.identifier,
            "grouping": self.grouping, "version": list(self.version),
            "description": self.description, "contexts": list(self.contexts),
            "context": context, "pixel_depths": list(self.depths), "components": ["RGBA"],
            "supports_tiles": self.supports_tiles,
            "temporal_clip_access": self.temporal_clip_access,
            "sequential_render": self.sequential_render,
            "render_thread_safety": self.thread_safety,
            "clips": [{"name": c.name, "optional": c.optional,
                       "temporal_access": c.temporal_access,
                       "supports_tiles": c.supports_tiles} for c in self.clips.values()],
            "params": [p.to_json() for p in self.params.values()],
        }


def describe(effect: type[Effect], context: str) -> Descriptor:
    """Run describe then describe_in_context, as a host does before creating instances."""
    desc = Descriptor(effect.identifier)
    effect.describe(desc)
    if context not in desc.contexts:
        raise EffectError(f"{effect.identifier} supports the contexts "
                          f"{', '.join(desc.contexts)}, not '{context}'")
    effect.describe_in_context(desc, context)
    desc.validate()
    return desc


def descriptor_json(desc: Descriptor, context: str) -> str:
    return json.dumps(desc.to_json(context), indent=2)


# -- what the host hands an instance -----------------------------------------------------------

class Clip(Protocol):
    """A clip as an instance sees it (the host implements this)."""

    name: str
    depth: str  # the pixel depth images of this clip come in
    frame_rate: float
    frame_range: tuple[float, float]  # first and last frame; last is inf while unknown

    def region_of_definition(self, time: float) -> Rect: ...

    def image(self, time: float, region: Rect | None = None) -> Image | None:
        """The clip's image at ``time``: for Source, at least the region of interest declared
        for this render; for Output at the render's time, the image to write the window of;
        earlier Output times give earlier outputs (read only). None where there is no frame."""


class Instance(Protocol):
    """An effect instance's view of its host (parameters, clips, context)."""

    context: str
    params: ParamSet

    def clip(self, name: str) -> Clip: ...


@dataclass(frozen=True)
class SequenceArgs:
    frame_range: tuple[float, float]  # first and last frame to be rendered
    frame_step: float = 1.0
    interactive: bool = False
    sequential: bool = True  # frames arrive in order, each once
    render_scale: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True)
class RenderArgs:
    time: float  # frames
    window: Rect  # the only part of the Output image this call may write
    sequential: bool = True
    interactive: bool = False
    field: str = "none"
    render_scale: tuple[float, float] = (1.0, 1.0)


class Effect:
    """Base of every effect: override describe, describe_in_context and render at least."""

    identifier: ClassVar[str]
    icon: ClassVar[str | None] = None  # a PNG beside the effect's module: the OpenFX bundle's icon

    @classmethod
    def describe(cls, desc: Descriptor) -> None:
        """Plugin-wide properties: label, grouping, version, contexts, depths, flags."""

    @classmethod
    def describe_in_context(cls, desc: Descriptor, context: str) -> None:
        """Clips and parameters for ``context``; the default defines Source and Output."""
        desc.define_clip(ClipDef(SOURCE, temporal_access=desc.temporal_clip_access))
        desc.define_clip(ClipDef(OUTPUT))

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def begin_sequence_render(self, args: SequenceArgs) -> None:
        """Before a run of render calls."""

    def render(self, args: RenderArgs) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement render")

    def end_sequence_render(self, args: SequenceArgs) -> None:
        """After the run; release what begin_sequence_render took."""

    def destroy(self) -> None:
        """The instance goes away."""

    def instance_changed(self, name: str, time: float) -> None:
        """Parameter ``name`` was changed by the user or the host."""

    def region_of_definition(self, time: float) -> Rect:
        return self.instance.clip(SOURCE).region_of_definition(time)

    def regions_of_interest(self, time: float, window: Rect) -> dict[str, Rect]:
        """Source pixels needed to render ``window``; by default the window itself."""
        return {SOURCE: window}

    def frames_needed(self, time: float) -> dict[str, list[tuple[float, float]]]:
        """Frame ranges per clip this render reads; by default only Source at ``time``."""
        return {SOURCE: [(time, time)]}


EffectFactory = Callable[[Instance], Effect]
