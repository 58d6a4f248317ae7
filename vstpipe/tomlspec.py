"""Reading TOML files whose errors name the place: file, table, key."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

MAX_BYTES = 16 << 20  # a TOML file vstpipe reads: 100,000 keyframes take about 5 MB
MAX_WEIGHT = 1e6  # blend weights are ratios; the bound keeps any sum of them finite
_LONG_NUMBER = re.compile(rb"\d{%d,}" % (sys.get_int_max_str_digits() + 1))


def load(path: Path) -> dict[str, Any]:
    """Parse ``path``; a missing, oversized or malformed file is one ConfigError naming it."""
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_BYTES:
                raise ConfigError(f"{path}: {size} bytes; vstpipe reads TOML files of up to "
                                  f"{MAX_BYTES} bytes")
            data = fh.read()
        return tomllib.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except ValueError:  # Python refuses to convert integers of more than 4300 digits
        long = _LONG_NUMBER.search(data)
        line = data.count(b"\n", 0, long.start()) + 1 if long else "?"
        raise ConfigError(f"{path}, line {line}: a number of more than "
                          f"{sys.get_int_max_str_digits()} digits; no setting takes one"
                          ) from None


def shown(value: Any) -> str:
    """``repr(value)`` cut to one short line: a value may be a 4000-digit number."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:24]}... ({len(text)} characters)"


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


def is_weight(value: Any) -> bool:
    """A blend weight: a number (not a bool) in [0, MAX_WEIGHT]; NaN and inf are not."""
    return not isinstance(value, bool) and isinstance(value, int | float) and \
        0 <= value <= MAX_WEIGHT


def weight(value: Any, name: str, where: str) -> float:
    """A blend weight of a TOML table, or a ConfigError naming it."""
    if not is_weight(value):
        raise ConfigError(f"{where}: weight of '{name}' must be a number >= 0 and at most "
                          f"{MAX_WEIGHT:g}, got {shown(value)}")
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
        raise ConfigError(f"{where}: key '{key}' must be {names}, got {shown(value)}")
    return value
