"""Named looks: TOML files shipped in ``presets/`` plus the user's own, by name or by path.

A preset file::

    name = "vangogh"                       # default: the file name without .toml
    description = "Swirling blue and yellow brushwork"
    style = "starry_night.jpg"             # image path relative to the file, or a table
                                           # { "a.png" = 2, "b.jpg" = 1 } of weighted images
    alpha = 1.0                            # strength in [0, 1]
    preserve_color = false                 # keep the source colours
    model = "adain-vgg19"                  # registry name or weights directory
    max_side = 1024                        # processing size: longer side the network sees
                                           # (16..16384)
    style_size = 512                       # shorter side of the style images (64..2048)
    smooth_stats = 0.9                     # temporal settings: one key per option that
    flow_blend = 0.8                       # vstpipe.temporal declares (statistics smoothing,
    cut_threshold = 0.2                    # flow-guided blending, shot-cut sensitivity)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs

from . import spec, temporal, tomlspec
from .errors import ConfigError, OptionError
from .images import NOT_AN_IMAGE, is_image
from .temporal import TemporalOptions
from .weights import DEFAULT_MODEL

_KEYS = ("name", "description", "style", "alpha", "preserve_color", "model", "max_side",
         "style_size")  # and one per temporal setting: keys()


def keys() -> tuple[str, ...]:
    """Every key a preset file may have: the look's, then the temporal settings'."""
    return (*_KEYS, *(o.name for o in temporal.options()))


def _size(data: dict[str, Any], key: str, where: str, default: int | None) -> int | None:
    """A size key, checked by the job spec's rule (spec.SIZES), the message naming the file."""
    value = tomlspec.get(data, key, int, where, default)
    try:
        return None if value is None else spec.check_size(key, value)
    except OptionError as exc:
        raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    styles: tuple[tuple[Path, float], ...]  # (image, weight > 0), weights summing to 1
    alpha: float = 1.0  # strength in [0, 1]
    preserve_color: bool = False  # keep the source colours
    model: str = DEFAULT_MODEL  # registry name or weights directory
    max_side: int | None = None  # longer side the network sees; None: full size
    temporal: TemporalOptions = field(default_factory=TemporalOptions)  # by setting name
    style_size: int = 512  # shorter side of the style images
    source: Path | None = None  # the TOML file it came from
    shipped: bool = False  # ships with vstpipe (False: the user's own)


def shipped_dir() -> Path:
    """The presets that ship inside the installed package."""
    return Path(str(resources.files("vstpipe.presets_data")))


def user_dir() -> Path:
    """The user's presets: ``$VSTPIPE_PRESETS`` or the platform's config dir for vstpipe."""
    env = os.environ.get("VSTPIPE_PRESETS")
    return Path(env) if env else Path(platformdirs.user_config_dir("vstpipe")) / "presets"


def weighted_styles(value: Any, base: Path, where: str, key: str = "style"
                    ) -> tuple[tuple[Path, float], ...]:
    """An image path or a {path: weight} table -> normalised (path, weight) pairs."""
    table = {value: 1.0} if isinstance(value, str) else value
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: key '{key}' must be an image path or a table of "
                          f"image = weight, got {tomlspec.shown(value)}")
    if len(table) > spec.MAX_STYLES:
        raise ConfigError(f"{where}: key '{key}' names {len(table)} images; a look blends at "
                          f"most {spec.MAX_STYLES}")
    pairs = []
    for name, raw in table.items():
        weight = tomlspec.weight(raw, name, where)
        path = (base / name).resolve()
        if not path.is_file():
            raise ConfigError(f"{where}: style image '{name}' not found (looked for {path})")
        if not is_image(path):
            raise ConfigError(f"{where}: style '{name}' {NOT_AN_IMAGE}")
        pairs.append((path, weight))
    total = sum(w for _, w in pairs)
    if total <= 0:
        raise ConfigError(f"{where}: the weights of '{key}' are all zero; give one > 0")
    return tuple((p, w / total) for p, w in pairs if w > 0)


def load(path: Path, shipped: bool = False) -> Preset:
    """Parse one preset file; every error names the file and the key."""
    where = str(path)
    data = tomlspec.load(path)
    tomlspec.check_keys(data, keys(), where, required=("style",))
    alpha = float(tomlspec.get(data, "alpha", (int, float), where, 1.0))
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"{where}: alpha {alpha} is outside [0, 1]")
    max_side = _size(data, "max_side", where, None)
    style_size = _size(data, "style_size", where, 512)
    name = tomlspec.get(data, "name", str, where, path.stem)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", name) or name.lower() == "none" or \
            name.endswith(".toml"):
        raise ConfigError(f"{where}: name '{name}' is not usable; use letters, digits, '-', "
                          "'_' or '.', not 'none' and not ending in .toml")
    return Preset(
        name=name,
        description=tomlspec.get(data, "description", str, where, ""),
        styles=weighted_styles(data["style"], path.parent, where),
        alpha=alpha,
        preserve_color=tomlspec.get(data, "preserve_color", bool, where, False),
        model=tomlspec.get(data, "model", str, where, DEFAULT_MODEL),
        max_side=max_side,
        temporal=_temporal(data, where),
        style_size=style_size,
        source=path,
        shipped=shipped,
    )


def _temporal(data: dict[str, Any], where: str) -> TemporalOptions:
    """The file's temporal settings, each checked against its declaration."""
    values = {}
    for option in temporal.options():
        kind = (int, float) if option.type is float else int  # TOML may write 1 for 1.0
        value = tomlspec.get(data, option.name, kind, where, option.default)
        values[option.name] = option.check(value, where, ConfigError)
    return TemporalOptions.of(values)


def _user_presets() -> tuple[list[Preset], dict[str, ConfigError]]:
    """The user's presets that load, and the errors of those that do not (by file stem)."""
    folder = user_dir()
    good, broken = [], {}
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            good.append(load(path))
        except ConfigError as exc:  # one broken file must not take every command down
            broken[path.stem] = exc
    return good, broken


def available() -> tuple[dict[str, Preset], list[str]]:
    """All presets by name (the user's override shipped ones) and notices for the user."""
    found = {p.name: p for p in (load(path, shipped=True)
                                 for path in sorted(shipped_dir().glob("*.toml")))}
    notices: list[str] = []
    good, broken = _user_presets()
    for preset in good:
        before = found.get(preset.name)
        if before is not None:
            whose = "the shipped one" if before.shipped else str(before.source)
            notices.append(f"preset '{preset.name}' from {preset.source} overrides {whose}")
        found[preset.name] = preset
    notices += [f"skipping a broken preset: {exc}" for exc in broken.values()]
    return found, notices


def find(name_or_path: str) -> tuple[Preset, list[str]]:
    """A preset by name, or a preset file by path (anything ending in .toml)."""
    if name_or_path.endswith(".toml"):
        return load(Path(name_or_path)), []
    found, notices = available()
    _, broken = _user_presets()
    if name_or_path not in found and name_or_path in broken:
        raise broken[name_or_path]
    if name_or_path not in found:
        raise ConfigError(f"unknown preset '{name_or_path}'; choose from "
                          f"{', '.join(sorted(found))} or pass a .toml file")
    return found[name_or_path], notices
