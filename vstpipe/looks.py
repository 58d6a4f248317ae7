"""What a user asked for (--style, --preset or --keyframes plus overrides) -> one look."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from . import keyframes, presets
from .errors import OptionError
from .keyframes import Timeline
from .temporal import TemporalOptions


@dataclass(frozen=True)
class LookChoice:
    styles: tuple[Path, ...] = ()  # --style images
    weights: tuple[float, ...] = ()  # --weights, one per --style
    preset: str | None = None  # --preset NAME or FILE.toml
    keyframes: Path | None = None  # --keyframes FILE.toml
    alpha: float | None = None  # --alpha override
    preserve_color: bool | None = None  # --preserve-color override
    style_size: int | None = None  # --style-size override
    max_side: int | None = None  # --max-side override
    model: str | None = None  # --model override
    temporal: Mapping[str, float] = field(default_factory=dict)  # temporal overrides by name


@dataclass(frozen=True)
class Look:
    timeline: Timeline
    preserve_color: bool
    style_size: int
    max_side: int | None
    temporal: TemporalOptions
    model: str
    notices: tuple[str, ...]  # e.g. a user preset overriding a shipped one


def resolve(choice: LookChoice, fps: Fraction | None) -> Look:
    """Exactly one source of styles; explicit flags override a preset's values.

    ``fps`` turns keyframe frame numbers ("f120") into seconds.
    """
    given = [n for n, v in (("--style", choice.styles), ("--preset", choice.preset),
                            ("--keyframes", choice.keyframes)) if v]
    if len(given) != 1:
        raise OptionError("give exactly one of --style, --preset or --keyframes"
                          + (f" (got {' and '.join(given)})" if given else ""))
    if choice.weights and not choice.styles:
        raise OptionError("--weights goes with several --style images")
    base = presets.Preset(name="", description="", styles=())
    notices: list[str] = []
    if choice.styles:
        timeline = Timeline.constant(choice.styles, choice.weights,
                                     1.0 if choice.alpha is None else choice.alpha)
    elif choice.preset:
        base, notices = presets.find(choice.preset)
        timeline = Timeline.constant([p for p, _ in base.styles], [w for _, w in base.styles],
                                     base.alpha if choice.alpha is None else choice.alpha)
    else:
        if choice.alpha is not None:
            raise OptionError("--alpha does not apply to --keyframes; set alpha per keyframe")
        timeline = keyframes.load(choice.keyframes, fps)
        notices = list(timeline.notices)
    return Look(
        timeline=timeline,
        preserve_color=base.preserve_color if choice.preserve_color is None
        else choice.preserve_color,
        style_size=base.style_size if choice.style_size is None else choice.style_size,
        max_side=base.max_side if choice.max_side is None else choice.max_side,
        temporal=TemporalOptions.of({**base.temporal, **choice.temporal}),
        model=base.model if choice.model is None else choice.model,
        notices=tuple(notices),
    )
