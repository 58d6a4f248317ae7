"""Finding effect plugins: the shipped ``plugins/`` folder, the folders on VSTPIPE_PLUGIN_PATH,
and the ``vstpipe.plugins`` entry-point group. A plugin that fails to import or to describe
itself is reported by name and skipped; the others stay usable.

A plugin is a ``.py`` file or a package folder (with ``__init__.py``) in a plugin folder whose
module defines ``EFFECTS``, a sequence of ``ofx.Effect`` subclasses. An entry point in the group
``vstpipe.plugins`` may name such a module, one Effect subclass, or a sequence of them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from types import ModuleType
from typing import Any

from . import ofx
from .errors import EffectError

ENTRY_POINT_GROUP = "vstpipe.plugins"
PATH_VARIABLE = "VSTPIPE_PLUGIN_PATH"


@dataclass(frozen=True)
class Failure:
    plugin: str  # the file, folder or entry point that failed
    message: str  # one line: what went wrong


@dataclass(frozen=True)
class Found:
    effect: type[ofx.Effect]
    origin: str  # where it came from, e.g. "shipped plugins/stylize.py"


@dataclass(frozen=True)
class Catalog:
    effects: Mapping[str, Found]  # identifier -> effect
    failures: tuple[Failure, ...]

    def get(self, name: str) -> type[ofx.Effect]:
        """An effect by identifier or by its last dotted part, when that is unambiguous."""
        if name in self.effects:
            return self.effects[name].effect
        short = [i for i in self.effects if i.rsplit(".", 1)[-1] == name]
        if len(short) == 1:
            return self.effects[short[0]].effect
        broken = [f for f in self.failures if name in f.plugin]
        if broken:
            raise EffectError(f"effect '{name}' did not load: {broken[0].plugin}: "
                              f"{broken[0].message}")
        raise EffectError(f"no effect '{name}'; available: {', '.join(self.effects) or 'none'}"
                          + (" (ambiguous: " + ", ".join(short) + ")" if short else ""))


def shipped_dir() -> Path:
    """The effects that come with vstpipe (``plugins/`` in a checkout, inside the wheel)."""
    return Path(str(resources.files("vstpipe.plugins_data")))


def search_folders(environ: Mapping[str, str]) -> list[Path]:
    extra = [Path(p) for p in environ.get(PATH_VARIABLE, "").split(os.pathsep) if p]
    return [shipped_dir(), *extra]


def _plugin_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if not p.name.startswith(("_", "."))
             and ((p.suffix == ".py" and p.is_file()) or (p / "__init__.py").is_file())]
    return sorted(found)


def _import_file(path: Path) -> ModuleType:
    """Import a plugin file or package folder under a private, path-unique module name."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    name = f"vstpipe_plugin_{path.stem.replace('-', '_')}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(
            name, path / "__init__.py", submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise EffectError(f"{path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _effects_of(obj: Any, where: str) -> list[type[ofx.Effect]]:
    """The Effect classes a plugin module or entry point offers."""
    if isinstance(obj, type):
        items: Iterable[Any] = [obj]
    elif isinstance(obj, ModuleType):
        if not hasattr(obj, "EFFECTS"):
            raise EffectError(f"{where} defines no EFFECTS list")
        items = obj.EFFECTS
    else:
        items = obj
    effects = list(items)
    for item in effects:
        if not (isinstance(item, type) and issubclass(item, ofx.Effect)) or \
                not isinstance(getattr(item, "identifier", None), str):
            raise EffectError(f"{where}: {item!r} is not an ofx.Effect subclass with an "
                              "identifier")
    return effects


def _check(effect: type[ofx.Effect]) -> None:
    """Describe the effect in each of its contexts, so a broken descriptor shows up here."""
    desc = ofx.Descriptor(effect.identifier)
    effect.describe(desc)
    for context in desc.contexts:
        ofx.describe(effect, context)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_catalog(environ: Mapping[str, str] | None = None) -> Catalog:
    """Every effect that loads and describes itself; the rest as failures, by name."""
    environ = os.environ if environ is None else environ
    effects: dict[str, Found] = {}
    failures: list[Failure] = []

    def add(origin: str, load: Any) -> None:
        try:
            found = _effects_of(load(), origin)
            for effect in found:
                _check(effect)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken plugin must not stop the host
            failures.append(Failure(origin, _one_line(exc)))
            return
        for effect in found:
            if effect.identifier in effects:
                failures.append(Failure(origin, f"effect {effect.identifier} is already "
                                        f"provided by {effects[effect.identifier].origin}"))
            else:
                effects[effect.identifier] = Found(effect, origin)

    shipped = shipped_dir()
    for folder in search_folders(environ):
        for path in _plugin_files(folder):
            origin = f"shipped plugins/{path.name}" if folder == shipped else str(path)
            add(origin, lambda path=path: _import_file(path))
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        add(f"entry point {entry.name} ({entry.value})", entry.load)
    return Catalog(effects, tuple(failures))
