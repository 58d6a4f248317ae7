"""The complete, frozen description of a stylize job: look, compute, temporal, model, encode.

Every front end (``render`` and ``filter`` flags, presets, keyframe files, an effect's
parameters) resolves what its user asked for into one :class:`Job` (``jobs.resolve``). Each part
checks itself once, when it is built, and names a bad value by its setting (``{max_side}``
fields, see ``errors.VstpipeError.about``): the CLI shows them as flags, a preset's loader
prefixes its file, an effect host shows its parameter names, which are the settings' names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import OptionError
from .media import EncodeOptions, Trim, check_encode_options
from .temporal import TemporalOptions
from .tensors import MIN_SIDE
from .tomlspec import shown
from .weights import DEFAULT_MODEL

if TYPE_CHECKING:
    from .keyframes import Timeline

# The valid sizes of a job, whoever sets them. A style image of 2048 squared is
# images.MAX_STYLE_PIXELS; no video frame is 16384 pixels wide.
SIZES = {"style_size": (64, 2048), "max_side": (MIN_SIDE, 16384)}
MAX_STYLES = 64  # distinct style images in one look: each is held in memory and encoded once
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def check_size(setting: str, value: Any) -> int:
    """``value`` as a valid ``setting`` (a key of SIZES), else an OptionError naming it."""
    low, high = SIZES[setting]
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError.about(f"{{{setting}}} {{value}} is not a whole number; use "
                                f"{low}..{high}", value=shown(value))
    if not low <= value <= high:
        raise OptionError.about(f"{{{setting}}} {{value}} is too "
                                f"{'small' if value < low else 'large'}; use {low}..{high}",
                                value=shown(value))
    return value


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' or ffmpeg's 'W:H' -> (W, H), or an OptionError naming ``size``; the parts check
    the bounds."""
    try:
        w, h = (int(v) for v in text.lower().replace(":", "x", 1).split("x"))
    except ValueError:  # also a number of thousands of digits
        raise OptionError.about("{size} {text}: not WxH or W:H, e.g. 1280x720",
                                text=text[:40]) from None
    return w, h


def check_choice(setting: str, value: Any, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise OptionError.about(f"{{{setting}}} {{value}} is not valid; choose from "
                                f"{', '.join(valid)}", value=shown(value))
    return value


@dataclass(frozen=True)
class Look:
    """What the frames should look like."""

    timeline: Timeline  # style images, their weights and alpha over time (eq. 10, 12)
    preserve_color: bool = False  # keep the source's colours (luminance-only transfer)
    style_size: int = 512  # shorter side of a style image when its statistics are taken

    def __post_init__(self) -> None:
        check_size("style_size", self.style_size)
        if not isinstance(self.preserve_color, bool):
            raise OptionError.about("{preserve_color} {value} is not true or false",
                                    value=shown(self.preserve_color))


@dataclass(frozen=True)
class Compute:
    """Where and how the network runs; none of it changes the look beyond rounding."""

    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    batch: int = 4  # frames per forward pass
    max_side: int | None = None  # the network sees at most this many pixels on the longer side
    queue: int = 8  # decoded frames buffered ahead of the model (bounds memory)

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)
        check_choice("precision", self.precision, PRECISIONS)
        for setting, value in (("batch", self.batch), ("queue", self.queue)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise OptionError.about(f"{{{setting}}} {{value}}: use 1..4096 frames",
                                        value=shown(value))
        if self.max_side is not None:
            check_size("max_side", self.max_side)


@dataclass(frozen=True)
class Job:
    """One stylize job, complete: every setting has its final value."""

    look: Look
    compute: Compute = field(default_factory=Compute)
    temporal: TemporalOptions = field(default_factory=TemporalOptions)
    model: str = DEFAULT_MODEL  # registry name or weights directory
    encode: EncodeOptions = field(default_factory=EncodeOptions)  # output files only
    trim: Trim = field(default_factory=Trim)  # the part of an input file to render
    notices: tuple[str, ...] = ()  # what the user should know (a preset overriding another)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise OptionError.about("{model} is empty; give a registry name or a weights "
                                    "directory")
        check_encode_options(self.encode)
