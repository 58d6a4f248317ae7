"""A batch as asked for: inputs x looks -> tasks, each an input, a look and an output path.

From a job file::

    out_dir = "out"                       # relative to this file (default: beside it)
    name = "{stem}.{look}.mov"            # {stem}, {look}, {ext} (the input's, with its dot)
    inputs = ["shots/*.mov", "plates/a.mp4"]

    [looks.vangogh]
    preset = "vangogh"

    [looks.ink-soft]
    preset = "ink"
    alpha = 0.6
    steady = true

or from `--inputs GLOB --preset NAME ... --out-dir DIR`. Every look is resolved into a job once
here (presets found, style images and keyframe files read, values checked), so a mistake in
the file is one error naming the file, the look and the key before anything renders. Problems
of one input (a corrupt file) belong to its tasks and are found when they run.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from .. import __version__, jobs, presets, temporal, tomlspec
from ..errors import ConfigError, VstpipeError
from ..media import EncodeOptions

DEFAULT_NAME = "{stem}.{look}{ext}"
LOOK_KEYS = ("preset", "style", "keyframes", "alpha", "preserve_color", "style_size",
             "max_side", "model", "precision", "batch", "codec", "crf", "pix_fmt", "start",
             "duration", "end", "steady")
FILE_KEYS = ("out_dir", "name", "inputs", "looks")


@dataclass(frozen=True)
class Look:
    name: str
    request: jobs.Request  # as the look's table asks; resolved per input (its frame rate)
    files: tuple[Path, ...]  # the files the look reads (style images, keyframes, preset)


@dataclass(frozen=True)
class Task:
    """One output: an input through a look."""

    input: Path
    look: Look
    output: Path

    @property
    def label(self) -> str:
        return self.output.name

    def settings_hash(self) -> str:
        """What decides the output's pixels: the look's request, the files it and the input
        read (path, size, modification time) and this vstpipe's version. A changed setting, an
        edited style image or a replaced input changes it."""
        request = dataclasses.asdict(self.look.request)
        stamps = [_stamp(path) for path in (self.input, *self.look.files)]
        text = json.dumps([request, stamps, str(self.output), __version__], sort_keys=True,
                          default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Plan:
    tasks: tuple[Task, ...]
    out_dir: Path
    source: str  # the job file, or "the command line"


def _stamp(path: Path) -> list[Any]:
    try:
        info = path.stat()
    except OSError:
        return [str(path), None, None]
    return [str(path), info.st_size, info.st_mtime_ns]


def _where(source: str, look: str | None = None) -> str:
    return f"{source}: look '{look}'" if look else source


def expand_inputs(patterns: Iterable[str], base: Path, where: str) -> list[Path]:
    """Paths and globs (relative to ``base``) -> the files, in order, each once; a pattern that
    matches nothing is an error naming it."""
    found: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        if glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(full, recursive=True))
            matches = [p for p in matches if p.is_file()]
        else:
            matches = [Path(full)]
        if not matches:
            raise ConfigError(f"{where}: input '{pattern}' matches no file")
        for path in matches:
            path = path.resolve() if path.exists() else path
            if path not in found:
                found.append(path)
    return found


def look_from_table(name: str, table: Mapping[str, Any], base: Path, source: str) -> Look:
    """A look's table -> its request, checked by resolving it (with no input yet)."""
    where = _where(source, name)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", name):
        raise ConfigError(f"{source}: look name '{name}' is not usable in a file name; use "
                          f"letters, digits, '-', '_' or '.'")
    options = {o.name for o in temporal.options()}
    tomlspec.check_keys(table, (*LOOK_KEYS, *sorted(options)), where)
    files: list[Path] = []
    styles: tuple[Path, ...] = ()
    weights: tuple[float, ...] = ()
    if "style" in table:
        pairs = presets.weighted_styles(table["style"], base, where)
        styles, weights = tuple(p for p, _ in pairs), tuple(w for _, w in pairs)
        files += styles
    keyframes = None
    if "keyframes" in table:
        keyframes = (base / tomlspec.get(table, "keyframes", str, where)).resolve()
        files.append(keyframes)
    preset = tomlspec.get(table, "preset", str, where, None)
    if preset is not None and (preset.endswith(".toml") or "/" in preset):
        preset = str((base / preset).resolve())
    given = {k: table[k] for k in options if k in table}
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: {key} must be a number, got {tomlspec.shown(value)}")
    steady = tomlspec.get(table, "steady", bool, where, False)
    encode = EncodeOptions(codec=tomlspec.get(table, "codec", str, where, None),
                           crf=tomlspec.get(table, "crf", int, where, None),
                           pix_fmt=tomlspec.get(table, "pix_fmt", str, where, None))
    request = jobs.Request(
        styles=styles, weights=weights, preset=preset, keyframes=keyframes,
        alpha=_number(table, "alpha", where), preserve_color=tomlspec.get(
            table, "preserve_color", bool, where, None),
        style_size=tomlspec.get(table, "style_size", int, where, None),
        max_side=tomlspec.get(table, "max_side", int, where, None),
        model=tomlspec.get(table, "model", str, where, None),
        temporal=temporal.with_steady({k: float(v) for k, v in given.items()}, steady),
        precision=tomlspec.get(table, "precision", str, where, "auto"),
        batch=tomlspec.get(table, "batch", int, where, 4), encode=encode,
        start=_time(table, "start", where), duration=_time(table, "duration", where),
        end=_time(table, "end", where))
    try:  # checked now (frame numbers at 25 fps); resolved again per input at its own rate
        jobs.resolve(request, Fraction(25))
        if preset is not None:
            found, _ = presets.find(preset)
            if found.source is not None:
                files.append(found.source)
    except VstpipeError as exc:
        raise ConfigError(f"{where}: {exc.named(lambda setting: setting)}") from None
    return Look(name, request, tuple(files))


def _number(table: Mapping[str, Any], key: str, where: str) -> float | None:
    value = tomlspec.get(table, key, (int, float), where, None)
    return None if value is None else float(value)


def _time(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = tomlspec.get(table, key, (int, float, str), where, None)
    return None if value is None else str(value)


def output_path(pattern: str, out_dir: Path, src: Path, look: str, where: str) -> Path:
    try:
        name = pattern.format(stem=src.stem, look=look, ext=src.suffix)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"{where}: name '{pattern}' cannot be filled ({exc}); use {{stem}}, "
                          f"{{look}} and {{ext}}") from None
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"{where}: name '{pattern}' gives '{name}' for {src.name}; give a "
                          f"file name")
    return out_dir / name


def make_plan(inputs: list[Path], looks: list[Look], out_dir: Path, name: str,
              source: str) -> Plan:
    tasks = []
    by_output: dict[Path, Task] = {}
    for src in inputs:
        for look in looks:
            task = Task(src, look, output_path(name, out_dir, src, look.name, source))
            if task.output in by_output:
                other = by_output[task.output]
                raise ConfigError(f"{source}: {other.input.name} with look '{other.look.name}' "
                                  f"and {src.name} with look '{look.name}' would both write "
                                  f"{task.output.name}; put {{ext}} or more of the input in "
                                  f"'name'")
            if task.output.resolve() == src.resolve():
                raise ConfigError(f"{source}: {src.name} with look '{look.name}' would write "
                                  f"over its input")
            by_output[task.output] = task
            tasks.append(task)
    return Plan(tuple(tasks), out_dir, source)


def load(path: Path) -> Plan:
    """A job file -> its plan; every error names the file (and the look and key)."""
    where = str(path)
    data = tomlspec.load(path)
    tomlspec.check_keys(data, FILE_KEYS, where, required=("inputs", "looks"))
    base = path.parent.resolve()
    raw_inputs = data["inputs"]
    if isinstance(raw_inputs, str):
        raw_inputs = [raw_inputs]
    if not (isinstance(raw_inputs, list) and raw_inputs and
            all(isinstance(p, str) for p in raw_inputs)):
        raise ConfigError(f"{where}: inputs must be a path or a list of paths and globs, got "
                          f"{tomlspec.shown(data['inputs'])}")
    looks_table = data["looks"]
    if not isinstance(looks_table, dict) or not looks_table or \
            not all(isinstance(t, dict) for t in looks_table.values()):
        raise ConfigError(f"{where}: looks must be tables, e.g. [looks.vangogh] with "
                          f"preset = \"vangogh\"")
    looks = [look_from_table(name, table, base, where) for name, table in looks_table.items()]
    out_dir = (base / tomlspec.get(data, "out_dir", str, where, ".")).resolve()
    name = tomlspec.get(data, "name", str, where, DEFAULT_NAME)
    return make_plan(expand_inputs(raw_inputs, base, where), looks, out_dir, name, where)


def from_options(inputs: list[str], looks_given: list[str], out_dir: Path,
                 name: str = DEFAULT_NAME) -> Plan:
    """`--inputs GLOB ... --preset NAME ... --out-dir DIR`: one look per preset, named by it."""
    where = "the command line"
    if not inputs or not looks_given:
        raise ConfigError("give a job file, or --inputs and at least one --preset")
    looks = [look_from_table(Path(p).stem if p.endswith(".toml") else p, {"preset": p},
                             Path.cwd(), where) for p in looks_given]
    return make_plan(expand_inputs(inputs, Path.cwd(), where), looks, out_dir.resolve(), name,
                     where)
