"""Temporal methods: the registry, their declared options, and the settings they resolve to.

Every flag, preset key and effect parameter of a temporal method is generated from the
``options`` its class declares (see base.py); the cut detector (cuts.py) declares the one
setting all methods share. A new method is one file with a TemporalMethod subclass plus one
line in ``_REGISTRY``; ``chain.Temporal`` runs the active ones in a render.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from ..errors import OptionError
from .base import Option, TemporalMethod
from .cuts import CutDetector

# The registry: one line per method ("module.Class" in this package), in the order the
# methods' hooks run.
_REGISTRY = (
    "smooth_stats.SmoothStats",
    "flow_blend.FlowBlend",
)


def _load(entry: str) -> type[TemporalMethod]:
    module, _, cls = entry.rpartition(".")
    return getattr(import_module(f"{__name__}.{module}"), cls)


METHODS: dict[str, type[TemporalMethod]] = {m.name: m for m in map(_load, _REGISTRY)}

# What --steady (and the effect's `steady` switch) turns on; explicit values win. Chosen from
# the measurements in README's results table: under TV-L1 and DeepFlow, a blend of 0.9 cuts
# the long-term ratio by 10-20 points more than 0.8 for the same short-term cut; 0.95 adds
# less again and moves the style distance up to +9%.
STEADY = {"smooth_stats": 0.9, "flow_blend": 0.9, "flow_across_edges": 1}


def options() -> tuple[Option, ...]:
    """Every declared temporal setting: the methods' in registry order, then the cut
    detector's. Read at call time, so a method registered later is included."""
    return (*(o for method in METHODS.values() for o in method.options), *CutDetector.options)


def option(name: str) -> Option:
    """The declared option ``name``, or an OptionError listing the valid names."""
    found = {o.name: o for o in options()}
    if name not in found:
        raise OptionError(f"unknown temporal setting '{name}'; expected {', '.join(found)}")
    return found[name]


def with_steady(given: Mapping[str, float | None], steady: bool) -> dict[str, float]:
    """The settings in ``given`` that are set (not None), with STEADY's values for the unset
    ones when ``steady``: how --steady and the effect's `steady` switch expand."""
    wanted = {k: v for k, v in given.items() if v is not None}
    return {**STEADY, **wanted} if steady else wanted


@dataclass(frozen=True)
class TemporalOptions(Mapping[str, float]):
    """The value of every declared temporal setting, by name; those not given take their
    declared default. Validates itself, naming the setting: ``TemporalOptions.of(values)``."""

    values: tuple[tuple[str, float], ...] = ()  # (name, value) of every declared setting

    def __post_init__(self) -> None:
        given = dict(self.values)
        full = tuple((o.name, o.check(given.pop(o.name, o.default))) for o in options())
        for unknown in given:
            option(unknown)  # raises, naming it and the known settings
        object.__setattr__(self, "values", full)  # normalised once: equal settings compare equal

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> TemporalOptions:
        return cls(tuple(values.items()))

    def __getitem__(self, name: str) -> float:
        for key, value in self.values:
            if key == name:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.values)

    def __len__(self) -> int:
        return len(self.values)
