"""What a temporal method is: declared options, and per render an object with two hooks.

A method acts in up to two places of every batch: its statistics hook replaces the per-frame
(mean, std) of the content features that AdaIN normalises by (before the decoder), and its blend
step changes the stylized frames (after the decoder). Both see the frames of a batch in
presentation order together with ``shot_starts``, one bool per frame: where True the frame
starts a shot, and no state from before it may reach it (the hook calls ``reset()`` there).

Options are declared, never written out: CLI flags, preset keys and effect parameters are
generated from the declarations, and ``Option.check`` is the one place a value is validated;
its messages name the setting as a field that each front end names its own way (the CLI as a
flag; a preset's loader puts its file before it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import torch

from ..errors import OptionError, VstpipeError

Stats = tuple[torch.Tensor, torch.Tensor]  # per-frame (mean, std) of features, each (B, C, 1, 1)


@dataclass(frozen=True)
class Range:
    """An interval of valid values; an open end excludes the bound itself."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:  # NaN is in no range
        above = self.low < value if self.low_open else self.low <= value
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:  # "[0, 1)": how every message shows it
        return (f"{'(' if self.low_open else '['}{self.low:g}, "
                f"{self.high:g}{')' if self.high_open else ']'}")


@dataclass(frozen=True)
class Option:
    """One setting of a temporal method: its preset key, flag and effect parameter at once."""

    name: str  # preset key and effect parameter; the flag is --name-with-dashes
    type: type[float | int]  # what the value is converted to
    range: Range  # valid values
    default: float  # the value when nobody sets it; the method's "off" where it has one
    help: str  # the flag's help: one sentence with the valid range
    hint: str  # a few words for an effect host's tooltip

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, where: str | None = None,
              error: type[VstpipeError] = OptionError) -> float:
        """``value`` as this option's type, or ``error`` naming the setting (a ``{name}``
        field, see ``VstpipeError.about``) and the valid range, after ``where`` (a preset's
        file) when given."""
        prefix = f"{where}: " if where else ""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise error.about(f"{prefix}{{{self.name}}} {{value}} is not a number; use a value "
                              f"in {self.range}", value=repr(value))
        if self.type is int and not float(value).is_integer():  # NaN and inf too
            raise error.about(f"{prefix}{{{self.name}}} {{value}} is not a whole number; use "
                              f"one in {self.range}", value=repr(value))
        value = self.type(value)
        if value not in self.range:
            raise error.about(f"{prefix}{{{self.name}}} {{value}} is outside {self.range}",
                              value=value)
        return value


Settings = Mapping[str, float]  # every declared option's value by name (temporal.TemporalOptions)
StatsHook = Callable[[Stats, Sequence[bool]], Stats]
BlendStep = Callable[[torch.Tensor, torch.Tensor, Sequence[bool]], torch.Tensor]


class TemporalMethod(ABC):
    """A temporal method: its declared options, and the state it carries through one render.

    Subclasses define ``stats_hook(stats, shot_starts) -> stats`` and/or
    ``blend(source, stylized, shot_starts) -> stylized``; the one they lack stays None.
    ``source`` is the batch (B, 3, h, w) in [0, 1] at the network's size, ``stylized`` the
    decoder's output for it (B, 3, h, w), unclamped; the blend returns frames in [0, 1].
    """

    name: ClassVar[str]  # how the registry and messages call the method
    options: ClassVar[tuple[Option, ...]]  # its settings; read them back from Settings by name
    stats_hook: StatsHook | None = None
    blend: BlendStep | None = None

    @classmethod
    @abstractmethod
    def create(cls, settings: Settings) -> Self | None:
        """The method's state for one render, or None when ``settings`` leave it off.

        Raises a VstpipeError when it cannot run here (a missing library), so that a render
        fails before any file is opened."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every frame seen so far, as at the start of a render or of a shot."""
