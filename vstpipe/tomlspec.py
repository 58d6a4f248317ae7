"""Reading TOML files whose errors name the place: file, table, key."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError


def load(path: Path) -> dict[str, Any]:
    """Parse ``path``; a missing or malformed file is one ConfigError naming it."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def check_keys(table: Mapping[str, Any], allowed: Iterable[str], where: str,
               required: Iterable[str] = ()) -> None:
    """Reject unknown keys (the usual typo) and missing required ones, naming ``where``."""
    allowed = list(allowed)
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key '{key}'; expected {', '.join(allowed)}")
    for key in required:
        if key not in table:
            raise ConfigError(f"{where}: missing key '{key}'")


def weight(value: Any, name: str, where: str) -> float:
    """A blend weight: a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value >= 0):
        raise ConfigError(f"{where}: weight of '{name}' must be a number >= 0, got {value!r}")
    return float(value)


def get(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str,
        default: Any = None) -> Any:
    """``table[key]`` checked against ``kind`` (bool is never accepted as a number)."""
    if key not in table:
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"{where}: key '{key}' must be {names}, got {value!r}")
    return value
