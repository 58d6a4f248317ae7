"""What a user asked for (a Request: one source of styles plus overrides) -> one complete Job.

Every front end comes here: ``render`` and ``filter`` build a Request from their flags, the
stylize effect from its parameters, ``presets preview`` from each preset. Values the request
leaves unset come from the preset, then from the spec's defaults; the Job's parts check
themselves (spec.py), so a value is validated once, whoever set it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

from . import keyframes, presets, timecode
from .errors import OptionError
from .keyframes import Timeline
from .media import EncodeOptions, Trim
from .spec import Compute, Job, Look
from .temporal import TemporalOptions


@dataclass(frozen=True)
class Request:
    """A job as asked for: exactly one of styles, preset or keyframes; None leaves a setting to
    the preset (or the default)."""

    styles: tuple[Path, ...] = ()  # style images
    weights: tuple[float, ...] = ()  # one per style image
    preset: str | None = None  # a preset's name or its .toml file
    keyframes: Path | None = None  # a keyframes .toml file
    alpha: float | None = None
    preserve_color: bool | None = None
    style_size: int | None = None
    max_side: int | None = None
    model: str | None = None
    temporal: Mapping[str, float] = field(default_factory=dict)  # settings given, by name
    device: str = "auto"
    precision: str = "auto"
    batch: int = 4
    queue: int = 8
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    # The part of the input to render, as written (seconds, HH:MM:SS[.fff], HH:MM:SS:FF, f120),
    # from the input's first frame; give at most one of duration and end.
    start: str | None = None
    duration: str | None = None
    end: str | None = None


_DEFAULTS = presets.Preset(name="", description="", styles=())  # a preset of the defaults


def resolve(request: Request, fps: Fraction | None = None) -> Job:
    """The complete job; ``fps`` turns keyframe frame numbers ("f120") into seconds."""
    given = [name for name, value in (("style", request.styles), ("preset", request.preset),
                                      ("keyframes", request.keyframes)) if value]
    if len(given) != 1:
        raise OptionError.about("give exactly one of {style}, {preset} or {keyframes}"
                                + (" (got " + " and ".join(f"{{{n}}}" for n in given) + ")"
                                   if given else ""))
    if request.weights and not request.styles:
        raise OptionError.about("{weights} goes with several {style} images")
    trim = _trim(request, fps)
    if request.preset:
        preset, notices = presets.find(request.preset)
        return replace(for_preset(preset, request, notices), trim=trim)
    if request.styles:
        timeline = Timeline.constant(request.styles, request.weights,
                                     1.0 if request.alpha is None else request.alpha)
        return replace(_job(timeline, _DEFAULTS, request, ()), trim=trim)
    if request.alpha is not None:
        raise OptionError.about("{alpha} does not apply to {keyframes}; set alpha per keyframe")
    timeline = keyframes.load(request.keyframes, fps)
    return replace(_job(timeline, _DEFAULTS, request, timeline.notices), trim=trim)


def _trim(request: Request, fps: Fraction | None) -> Trim:
    """The request's start/duration/end as seconds from the input's first frame."""
    def read(setting: str) -> Fraction | None:
        value = getattr(request, setting)
        if value is None:
            return None
        if not fps and re.match(r"\s*f\d|.*:.*:.*[:;]", value):
            raise OptionError.about(f"{{{setting}}} {{value}}: the input states no frame rate, "
                                    "so frames cannot be counted; give seconds or HH:MM:SS",
                                    value=repr(value))
        return timecode.parse(value, fps, setting, OptionError, setting=True)

    start, duration, end = read("start"), read("duration"), read("end")
    if duration is not None and end is not None:
        raise OptionError.about("give {duration} or {end}, not both")
    if duration is not None and duration <= 0:
        raise OptionError.about("{duration} {value}: must be longer than 0",
                                value=repr(request.duration))
    start = start or Fraction(0)
    if end is not None and end <= start:
        raise OptionError.about("{end} {value} must come after {start} ({a:g} s)",
                                value=repr(request.end), a=float(start))
    return Trim(start, end if duration is None else start + duration)


def for_preset(preset: presets.Preset, request: Request | None = None,
               notices: tuple[str, ...] | list[str] = ()) -> Job:
    """The job of ``preset`` with the request's overrides (its own style source ignored)."""
    request = request or Request()
    alpha = preset.alpha if request.alpha is None else request.alpha
    timeline = Timeline.constant([p for p, _ in preset.styles], [w for _, w in preset.styles],
                                 alpha)
    return _job(timeline, preset, request, notices)


T = TypeVar("T")


def pick(asked: T | None, default: T) -> T:
    """The value asked for, or ``default`` where the request left it unset (None)."""
    return default if asked is None else asked


def _job(timeline: Timeline, base: presets.Preset, request: Request,
         notices: tuple[str, ...] | list[str]) -> Job:
    """``request``'s values over ``base``'s (a preset, or an empty one holding the defaults)."""
    return Job(
        look=Look(timeline, pick(request.preserve_color, base.preserve_color),
                  pick(request.style_size, base.style_size)),
        compute=Compute(request.device, request.precision, request.batch,
                        pick(request.max_side, base.max_side), request.queue),
        temporal=TemporalOptions.of({**base.temporal, **request.temporal}),
        model=pick(request.model, base.model),
        encode=request.encode,
        notices=tuple(notices),
    )
