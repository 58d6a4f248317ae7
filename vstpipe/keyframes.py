"""Looks over time: TOML keyframes -> ``Timeline.at(t)`` -> style weights and alpha.

A keyframes file::

    [timeline]
    ease = "smooth"                    # linear | smooth | hold (default for every segment)
    [[keyframe]]
    at = "00:00:00"                    # seconds, HH:MM:SS[.fff], HH:MM:SS:FF or a frame "f120"
    style = "vangogh"                  # preset name, image path (relative to this file), or none
    [[keyframe]]
    at = 6.0
    style = { graffiti = 0.5, vangogh = 0.5 }   # weighted blend
    alpha = 0.5                        # default: the preset's alpha, 1 for images, 0 for none
    ease = "linear"                    # easing of the segment that ends here

Between keyframes the style weights and alpha follow the segment's easing; before the first and
after the last keyframe they hold. Time is each frame's pts in seconds from the first frame's;
in a trimmed render (``--start``), from the source's first frame, so one file serves any trim.

Limits, checked before anything is built: MAX_KEYFRAMES keyframes, spec.MAX_STYLES distinct
style images, times up to timecode.MAX_SECONDS (timecode.py reads them).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from . import presets, spec, timecode, tomlspec
from .errors import ConfigError, OptionError
from .images import NOT_AN_IMAGE, is_image
from .weights import DEFAULT_MODEL

EASES = ("linear", "smooth", "hold")
KEYFRAME_KEYS = ("at", "style", "alpha", "ease")
TIMELINE_KEYS = ("ease",)
MAX_KEYFRAMES = 100_000  # validated in seconds; a render looks each frame up by bisection


@dataclass(frozen=True)
class Keyframe:
    at: Fraction  # seconds from the start, exact so "f120" and frame pts compare exactly
    weights: tuple[float, ...]  # one per Timeline.styles, summing to 1 (all 0 for `none`)
    alpha: float  # strength in [0, 1]
    ease: str  # easing of the segment that ends at this keyframe
    original: float = 0.0  # 1 for `none`: the source pixels themselves, mixed in after stylizing
    label: str = ""  # the style as the file wrote it ("vangogh", "{ graffiti = 1, ink = 1 }")


@dataclass(frozen=True)
class Timeline:
    styles: tuple[Path, ...]  # every distinct style image, each encoded once per render
    keyframes: tuple[Keyframe, ...]  # at least one, strictly increasing times
    sizes: tuple[int | None, ...] = ()  # per style: a preset's style_size; None: the render's
    notices: tuple[str, ...] = ()  # things the user should know (preset overrides, ignored keys)

    @staticmethod
    def constant(styles: Sequence[Path], weights: Sequence[float] = (), alpha: float = 1.0
                 ) -> Timeline:
        """One look for the whole video (``render --style ... --weights ... --alpha``)."""
        if not styles:
            raise OptionError.about("no style given; give {style} IMAGE, {preset} NAME or "
                                    "{keyframes} FILE")
        if len(styles) > spec.MAX_STYLES:
            raise OptionError.about("{style} given {n} times; a look blends at most {most} "
                                    "images", n=len(styles), most=spec.MAX_STYLES)
        if weights and len(weights) != len(styles):
            raise OptionError.about("{weights} has {n} values for {k} styles; give one weight "
                                    "per {style}", n=len(weights), k=len(styles))
        if not all(tomlspec.is_weight(w) for w in weights) or (weights and sum(weights) <= 0):
            raise OptionError.about("{weights} {value}: weights must be >= 0 and at most "
                                    "{most:g}, with one of them > 0",
                                    value=",".join(map(str, weights)), most=tomlspec.MAX_WEIGHT)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or \
                not 0.0 <= alpha <= 1.0:  # also rejects nan
            raise OptionError.about("{alpha} {value} is outside [0, 1]", value=alpha)
        w = np.asarray(weights or [1.0] * len(styles), dtype=np.float64)
        return Timeline(tuple(styles),
                        (Keyframe(Fraction(0), tuple(w / w.sum()), alpha, "hold"),))

    @cached_property
    def _times(self) -> list[Fraction]:
        """Keyframe times for bisection, built once rather than once per frame."""
        return [k.at for k in self.keyframes]

    def size_of(self, index: int, default: int) -> int:
        """The shorter side style image ``index`` is encoded at."""
        return (self.sizes[index] if self.sizes else None) or default

    def _segment(self, t: Fraction | float) -> tuple[Keyframe, Keyframe, float]:
        """The keyframes around ``t`` and the eased progress between them."""
        frames = self.keyframes
        if t <= frames[0].at:
            return frames[0], frames[0], 0.0
        if t >= frames[-1].at:
            return frames[-1], frames[-1], 0.0
        i = bisect.bisect_right(self._times, t)
        a, b = frames[i - 1], frames[i]
        return a, b, ease(b.ease, float((t - a.at) / (b.at - a.at)))

    def at(self, t: Fraction | float) -> tuple[np.ndarray, float]:
        """Style weights (K,) summing to 1 and alpha at ``t`` seconds."""
        a, b, s = self._segment(t)
        weights = (1 - s) * np.asarray(a.weights) + s * np.asarray(b.weights)
        return weights / weights.sum(), (1 - s) * a.alpha + s * b.alpha

    def looks_at(self, t: Fraction | float) -> list[tuple[str, float]]:
        """The keyframes' styles as the file wrote them and their shares at ``t``."""
        a, b, s = self._segment(t)
        shares = [(a.label, 1 - s), (b.label, s)] if a is not b else [(a.label, 1.0)]
        merged: dict[str, float] = {}
        for label, share in shares:
            merged[label] = merged.get(label, 0.0) + share
        return [(label, share) for label, share in merged.items() if share > 5e-4]

    def original_at(self, t: Fraction | float) -> float:
        """How much of the source frame itself replaces the stylized one (1 at `none`)."""
        a, b, s = self._segment(t)
        return (1 - s) * a.original + s * b.original

    def is_constant(self) -> bool:
        return len(self.keyframes) == 1


def ease(kind: str, s: float) -> float:
    """Segment progress s in [0, 1] -> eased progress."""
    if kind == "linear":
        return s
    if kind == "smooth":
        return s * s * (3 - 2 * s)  # smoothstep: zero slope at both keyframes
    return 0.0  # hold: keep the previous keyframe's look until the next one


class _StyleReader:
    """Reads keyframes' ``style`` values; each image is checked once, however many keyframes
    name it, and each preset's notice is given once."""

    def __init__(self, base: Path, known: Mapping[str, presets.Preset]) -> None:
        self.base, self.known = base, known
        self.sizes: dict[Path, int | None] = {}  # every style image -> its preset's style size
        self.notices: list[str] = []
        self._images: dict[str, Path] = {}  # name as written -> checked image

    def weights(self, value: Any, where: str) -> tuple[dict[Path, float], float | None]:
        """A keyframe's style -> {image: weight} and its default alpha (None for `none`).

        A preset contributes its images, weights, alpha and style size; its model and colour
        settings belong to the whole render, so a differing one is reported in ``notices``.
        """
        if isinstance(value, str) and value.strip().lower() == "none":
            return {}, None
        table = {value: 1.0} if isinstance(value, str) else value
        if not isinstance(table, dict) or not table:
            raise ConfigError(f"{where}: key 'style' must be a preset name, an image path, "
                              f"none, or a table of name = weight, got {tomlspec.shown(value)}")
        out: dict[Path, float] = {}
        sized: dict[Path, int] = {}  # images of presets, at the preset's style size
        alpha_sum = weight_sum = 0.0
        for name, raw in table.items():
            weight = tomlspec.weight(raw, name, where)
            weight_sum += weight
            if name in self.known:
                preset = self._preset(name, where)
                alpha_sum += weight * preset.alpha
                for path, share in preset.styles:
                    out[path] = out.get(path, 0.0) + weight * share
                    sized[path] = preset.style_size
            else:
                path = self._image(name, where)
                alpha_sum += weight
                out[path] = out.get(path, 0.0) + weight
        total = sum(out.values())
        if total <= 0:
            raise ConfigError(f"{where}: the style weights are all zero; give one > 0")
        if len(self.sizes.keys() | out.keys()) > spec.MAX_STYLES:
            raise ConfigError(f"{where}: more than {spec.MAX_STYLES} distinct style images in "
                              "one file; each is held in memory and encoded for the whole render")
        for path in out:
            self.sizes.setdefault(path, None)
        self.sizes.update(sized)
        # The default alpha of a blend is the weighted mean of its parts' (presets' or 1 for
        # images).
        return {p: w / total for p, w in out.items() if w > 0}, alpha_sum / weight_sum

    def _preset(self, name: str, where: str) -> presets.Preset:
        """Preset ``name``, with a notice (once) when its render-wide settings are ignored."""
        preset = self.known[name]
        note = (f"preset '{name}' is used for its styles and alpha; its model and "
                "preserve_color come from the command line")
        if (preset.preserve_color or preset.model != DEFAULT_MODEL) and not any(
                n.endswith(note) for n in self.notices):
            self.notices.append(f"{where}: {note}")
        return preset

    def _image(self, name: str, where: str) -> Path:
        """The image ``name`` relative to the file, checked readable the first time it is named:
        fail now, naming the keyframe, rather than mid-render."""
        if name not in self._images:
            path = self.base / name
            if not path.is_file():
                raise ConfigError(f"{where}: unknown preset or missing image '{name}'; expected "
                                  f"a preset ({', '.join(sorted(self.known))}), an image path "
                                  f"relative to {self.base}, or none")
            if not is_image(path):
                raise ConfigError(f"{where}: style '{name}' {NOT_AN_IMAGE}")
            self._images[name] = path.resolve()
        return self._images[name]


def load(path: Path, fps: Fraction | None = None) -> Timeline:
    """Parse and validate a keyframes file; every error names the file, keyframe and key."""
    data = tomlspec.load(path)
    tomlspec.check_keys(data, ("timeline", "keyframe"), str(path), required=("keyframe",))
    head = tomlspec.get(data, "timeline", dict, f"{path} [timeline]", {})
    tomlspec.check_keys(head, TIMELINE_KEYS, f"{path} [timeline]")
    default_ease = _ease(head, "linear", f"{path} [timeline]")
    rows = tomlspec.get(data, "keyframe", list, str(path))
    if not rows:
        raise ConfigError(f"{path}: no [[keyframe]] tables; add at least one")
    if len(rows) > MAX_KEYFRAMES:
        raise ConfigError(f"{path}: {len(rows)} keyframes; a file holds at most {MAX_KEYFRAMES}")
    known, found_notices = presets.available()
    reader = _StyleReader(path.parent, known)
    parsed = []
    for number, row in enumerate(rows, start=1):
        where = f"{path} [[keyframe]] #{number}"
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: must be a table")
        tomlspec.check_keys(row, KEYFRAME_KEYS, where, required=("at", "style"))
        at = timecode.parse(row["at"], fps, f"{where} 'at'")
        if parsed and at <= parsed[-1][0]:
            raise ConfigError(f"{where}: time {tomlspec.shown(row['at'])} ({float(at):g} s) does "
                              f"not come after keyframe #{number - 1} "
                              f"({float(parsed[-1][0]):g} s); times must increase")
        weights, default_alpha = reader.weights(row["style"], where)
        if default_alpha is None and "alpha" in row:
            raise ConfigError(f"{where}: style none takes no alpha (it is the original footage)")
        alpha = tomlspec.get(row, "alpha", (int, float), where,
                             0.0 if default_alpha is None else default_alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"{where}: alpha {tomlspec.shown(alpha)} is outside [0, 1]")
        parsed.append((at, weights, float(alpha), _ease(row, default_ease, where),
                       _written(row["style"])))
    styles = tuple(dict.fromkeys(p for _, w, _, _, _ in parsed for p in w))
    if not styles:
        raise ConfigError(f"{path}: every keyframe has style none; name at least one style")
    keyframes = _fill_none(tuple(Keyframe(at, tuple(w.get(p, 0.0) for p in styles), alpha, e,
                                          0.0 if w else 1.0, label)
                                 for at, w, alpha, e, label in parsed))
    return Timeline(styles, keyframes, tuple(reader.sizes[p] for p in styles),
                    tuple(dict.fromkeys([*found_notices, *reader.notices])))


def _written(style: Any) -> str:
    """A keyframe's ``style`` value as the user wrote it, for `keyframes check`."""
    if isinstance(style, Mapping):
        return "{ " + ", ".join(f"{name} = {tomlspec.shown(weight)}"
                                for name, weight in style.items()) + " }"
    return str(style)


def _fill_none(frames: tuple[Keyframe, ...]) -> tuple[Keyframe, ...]:
    """A `none` keyframe keeps the look of its nearest styled neighbour (the previous one, else
    the next): fading to or from the original footage is then a pure crossfade of pixels, and
    the style does not change shape on the way. Linear: files hold many keyframes."""
    donors: list[Keyframe | None] = []
    last = None
    for k in frames:
        last = last if k.original else k
        donors.append(last)
    first_styled = next(k for k in frames if not k.original)
    return tuple(replace(k, weights=d.weights, alpha=d.alpha) if k.original else k
                 for k, d in zip(frames, (d or first_styled for d in donors)))


def _ease(table: Mapping[str, Any], default: str, where: str) -> str:
    value = tomlspec.get(table, "ease", str, where, default)
    if value not in EASES:
        raise ConfigError(f"{where}: ease '{value}' is not one of {', '.join(EASES)}")
    return value
