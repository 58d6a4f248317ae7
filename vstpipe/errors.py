"""One typed error hierarchy; the CLI prints any of these as a single line and exits 1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self


class VstpipeError(Exception):
    """Base of every error a user can cause; its message is one line naming the culprit.

    The library names settings the way the job spec does (``max_side``), never as one front
    end spells them: an error built with :meth:`about` keeps its ``{setting}`` fields, and each
    front end names them its own way with :meth:`named` (the CLI as ``--max-side``, an effect
    host by its parameter, which is the setting's name).
    """

    template: str | None = None  # the message with {setting} fields; None: a plain message
    values: dict[str, Any] = {}  # noqa: RUF012 - the non-setting fields of ``template``

    @classmethod
    def about(cls, template: str, **values: Any) -> Self:
        """An error whose message names settings as ``{setting}`` fields; ``values`` fill
        the other fields (a value's text is never read as a field)."""
        exc = cls(template.format_map(_Fields(values, str)))
        exc.template, exc.values = template, values
        return exc

    def named(self, name: Callable[[str], str]) -> str:
        """The message with each setting named by ``name(setting)``."""
        if self.template is None:
            return str(self)
        return self.template.format_map(_Fields(self.values, name))


class _Fields(dict[str, Any]):
    """The values of a template's fields; a field not among them is a setting's name."""

    def __init__(self, values: dict[str, Any], name: Callable[[str], str]) -> None:
        super().__init__(values)
        self._name = name

    def __missing__(self, key: str) -> str:
        return self._name(key)


class MediaError(VstpipeError):
    """An input file that cannot be opened, probed or decoded (corrupt, truncated, no video)."""


class OutputError(VstpipeError):
    """An output path that must not be written (exists, equals the input, unwritable)."""


class OptionError(VstpipeError):
    """An option value outside its valid range or set."""


class ModelError(VstpipeError):
    """A model name, directory or weight file that cannot be used."""


class LayoutError(ModelError):
    """A weight file whose keys or tensor shapes differ from the published layout."""


class ChecksumError(ModelError):
    """A downloaded or imported file whose sha256 differs from the registry's."""


class DownloadError(ModelError):
    """The network could not deliver a model file (unreachable, dropped, HTTP error)."""


class ConfigError(VstpipeError):
    """A TOML file (preset, keyframes) that is unreadable or names a wrong key or value."""


class EffectError(VstpipeError):
    """An effect plugin that fails to load, describe or render, or breaks the effect API's
    rules (writes outside its render window); the message names the effect."""


class ParamError(OptionError):
    """An effect parameter value of the wrong type or outside its range, or an unknown name."""
