"""One typed error hierarchy; the CLI prints any of these as a single line and exits 1."""


class VstpipeError(Exception):
    """Base of every error a user can cause; its message is one line naming the culprit."""


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
