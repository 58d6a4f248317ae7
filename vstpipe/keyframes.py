"""Looks over time: TOML keyframes -> ``Timeline.at(t)`` -> style weights and alpha.

A keyframes file::

    [timeline]
    ease = "smooth"                    # linear | smooth | hold (default for every segment)
    [[keyframe]]
    at = "00:00:00"                    # timecode HH:MM:SS[.fff], seconds, or a frame "f120"
    style = "vangogh"                  # preset name, image path (relative to this file), or none
    [[keyframe]]
    at = 6.0
    style = { graffiti = 0.5, vangogh = 0.5 }   # weighted blend
    alpha = 0.5                        # default: the preset's alpha, 1 for images, 0 for none
    ease = "linear"                    # easing of the segment that ends here

Between keyframes the style weights and alpha follow the segment's easing; before the first and
after the last keyframe they hold. Time is each frame's pts in seconds from the first frame's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import presets, tomlspec
from .errors import ConfigError, OptionError

EASES = ("linear", "smooth", "hold")
KEYFRAME_KEYS = ("at", "style", "alpha", "ease")
TIMELINE_KEYS = ("ease",)
_TIMECODE = re.compile(r"^(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)$")
_FRAME = re.compile(r"^f(\d+)$")


@dataclass(frozen=True)
class Keyframe:
    at: float  # seconds from the first frame
    weights: tuple[float, ...]  # one per Timeline.styles, summing to 1 (all 0 for `none`)
    alpha: float  # strength in [0, 1]
    ease: str  # easing of the segment that ends at this keyframe


@dataclass(frozen=True)
class Timeline:
    styles: tuple[Path, ...]  # every distinct style image, each encoded once per render
    keyframes: tuple[Keyframe, ...]  # at least one, strictly increasing times

    @staticmethod
    def constant(styles: Sequence[Path], weights: Sequence[float] = (), alpha: float = 1.0
                 ) -> Timeline:
        """One look for the whole video (``render --style ... --weights ... --alpha``)."""
        if not styles:
            raise OptionError("no style given; pass --style IMAGE, --preset NAME or "
                              "--keyframes FILE")
        if weights and len(weights) != len(styles):
            raise OptionError(f"--weights has {len(weights)} values for {len(styles)} styles; "
                              "give one weight per --style")
        if not all(math.isfinite(w) and w >= 0 for w in weights) or (
                weights and sum(weights) <= 0):
            raise OptionError(f"--weights {','.join(map(str, weights))}: weights must be >= 0 "
                              "with a positive sum")
        if not 0.0 <= alpha <= 1.0:  # also rejects nan
            raise OptionError(f"--alpha {alpha} is outside [0, 1]")
        w = np.asarray(weights or [1.0] * len(styles), dtype=np.float64)
        return Timeline(tuple(styles), (Keyframe(0.0, tuple(w / w.sum()), alpha, "hold"),))

    def at(self, t: float) -> tuple[np.ndarray, float]:
        """Style weights (K,) summing to 1 (all 0 for `none`) and alpha at ``t`` seconds."""
        frames = self.keyframes
        if t <= frames[0].at or len(frames) == 1:
            k = frames[0] if t <= frames[0].at else frames[-1]
            return np.asarray(k.weights), k.alpha
        if t >= frames[-1].at:
            return np.asarray(frames[-1].weights), frames[-1].alpha
        i = int(np.searchsorted([k.at for k in frames], t, side="right"))
        a, b = frames[i - 1], frames[i]
        s = ease(b.ease, (t - a.at) / (b.at - a.at))
        weights = (1 - s) * np.asarray(a.weights) + s * np.asarray(b.weights)
        total = weights.sum()  # below 1 while fading from or to `none`
        return (weights / total if total > 0 else weights), (1 - s) * a.alpha + s * b.alpha

    def is_constant(self) -> bool:
        return len(self.keyframes) == 1


def ease(kind: str, s: float) -> float:
    """Segment progress s in [0, 1] -> eased progress."""
    if kind == "linear":
        return s
    if kind == "smooth":
        return s * s * (3 - 2 * s)  # smoothstep: zero slope at both keyframes
    return 0.0  # hold: keep the previous keyframe's look until the next one


def parse_time(value: Any, fps: float | None, where: str) -> float:
    """Seconds from a timecode "HH:MM:SS[.fff]", a number of seconds, or a frame "f120"."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: 'at' must be a timecode, seconds or a frame like "
                          f"\"f120\", got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _TIMECODE.match(value.strip())):
        seconds = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    elif isinstance(value, str) and (m := _FRAME.match(value.strip())):
        if not fps:
            raise ConfigError(f"{where}: frame number '{value}' needs a frame rate; pass --fps")
        seconds = int(m[1]) / fps
    else:
        raise ConfigError(f"{where}: cannot read time {value!r}; use HH:MM:SS[.fff], seconds, "
                          "or a frame number like \"f120\"")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{where}: time {value!r} must be >= 0")
    return seconds


def _style_weights(value: Any, base: Path, where: str, known: Mapping[str, presets.Preset]
                   ) -> tuple[dict[Path, float], float | None]:
    """A keyframe's style -> {image: weight} and the preset's alpha (None for plain images)."""
    if isinstance(value, str) and value.strip().lower() == "none":
        return {}, 0.0
    table = {value: 1.0} if isinstance(value, str) else value
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: key 'style' must be a preset name, an image path, none, "
                          f"or a table of name = weight, got {value!r}")
    out: dict[Path, float] = {}
    alphas = []
    for name, weight in table.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
                math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"{where}: weight of '{name}' must be a number >= 0, got {weight!r}")
        if name in known:
            preset = known[name]
            alphas.append(preset.alpha)
            parts = preset.styles
        elif (base / name).is_file():
            parts = ((base / name).resolve(), 1.0),
            alphas.append(1.0)
        else:
            raise ConfigError(f"{where}: unknown preset or missing image '{name}'; expected a "
                              f"preset ({', '.join(sorted(known))}), an image path relative "
                              f"to {base}, or none")
        for path, share in parts:
            out[path] = out.get(path, 0.0) + weight * share
    total = sum(out.values())
    if total <= 0:
        raise ConfigError(f"{where}: the style weights are all zero; give one > 0")
    alpha = alphas[0] if len(set(alphas)) == 1 else 1.0
    return {p: w / total for p, w in out.items() if w > 0}, alpha


def load(path: Path, fps: float | None = None) -> Timeline:
    """Parse and validate a keyframes file; every error names the file, keyframe and key."""
    data = tomlspec.load(path)
    tomlspec.check_keys(data, ("timeline", "keyframe"), str(path), required=("keyframe",))
    head = tomlspec.get(data, "timeline", dict, f"{path} [timeline]", {})
    tomlspec.check_keys(head, TIMELINE_KEYS, f"{path} [timeline]")
    default_ease = _ease(head, "linear", f"{path} [timeline]")
    rows = tomlspec.get(data, "keyframe", list, str(path))
    if not rows:
        raise ConfigError(f"{path}: no [[keyframe]] tables; add at least one")
    known, _ = presets.available()
    parsed = []
    for number, row in enumerate(rows, start=1):
        where = f"{path} [[keyframe]] #{number}"
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: must be a table")
        tomlspec.check_keys(row, KEYFRAME_KEYS, where, required=("at", "style"))
        at = parse_time(row["at"], fps, where)
        if parsed and at <= parsed[-1][0]:
            raise ConfigError(f"{where}: time {row['at']!r} ({at:g} s) does not come after "
                              f"keyframe #{number - 1} ({parsed[-1][0]:g} s); times must increase")
        weights, preset_alpha = _style_weights(row["style"], path.parent, where, known)
        alpha = tomlspec.get(row, "alpha", (int, float), where, preset_alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"{where}: alpha {alpha} is outside [0, 1]")
        parsed.append((at, weights, float(alpha), _ease(row, default_ease, where)))
    styles = tuple(dict.fromkeys(p for _, w, _, _ in parsed for p in w))
    keyframes = tuple(Keyframe(at, tuple(w.get(p, 0.0) for p in styles), alpha, e)
                      for at, w, alpha, e in parsed)
    if not styles:
        raise ConfigError(f"{path}: every keyframe has style none; name at least one style")
    return Timeline(styles, keyframes)


def _ease(table: Mapping[str, Any], default: str, where: str) -> str:
    value = tomlspec.get(table, "ease", str, where, default)
    if value not in EASES:
        raise ConfigError(f"{where}: ease '{value}' is not one of {', '.join(EASES)}")
    return value
