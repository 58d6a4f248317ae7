"""The command list, as `vstpipe --help` shows it, without importing what the commands use.

The commands themselves (cli.py) import torch, PyAV and OpenCV, which takes seconds; listing
them or printing the version must not. entry.py answers ``vstpipe``, ``vstpipe --help`` and
``vstpipe --version`` from this module alone (typer, rich); anything else loads cli.py.
tests/test_cli.py holds this list to the commands cli.py registers.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import typer
import typer.core

from . import __version__

HELP: Final = "Turn videos into paintings without the flicker."
# name -> one line, in the order `vstpipe --help` lists them (cli.py registers them so).
COMMANDS: Final = {
    "render": "Stylize every frame of SRC into --out, keeping timestamps, audio and tags.",
    "filter": "Stylize raw frames from stdin to stdout, for ffmpeg pipelines (see the README).",
    "eval": "Temporal consistency (warping error) of each STYLIZED against SOURCE.",
    "finetune": "Finetune a decoder on DAVIS frame pairs with the paper's inter-frame affinity "
                "loss.",
    "train": "The image stage: train a decoder on content and style images (L_c + L_s).",
    "batch": "Render many inputs with many looks; re-runs skip what is done with the same "
             "settings.",
    "serve": "Frame server for native plugin bridges (protocol: plugins/README.md).",
    "models": "List, download, import and verify weights.",
    "presets": "Named looks: list, show, preview.",
    "keyframes": "Keyframed style transitions.",
    "ofx": "OpenFX-style effects: list, describe, render, bundle.",
}
VERSION_HELP: Final = "Print the version and exit."
DEBUG_HELP: Final = "Show tracebacks on errors."


_LABELS = {"Path": "PATH", "int": "INTEGER", "float": "NUMBER", "str": "TEXT", "bool": ""}


def plain_labels(command: Any) -> None:
    """Help without Python type labels (``<list[Path]>``, ``<bool>``): a flag shows none, a
    value the classic upper-case name of what it takes (PATH, INTEGER, TEXT ...)."""
    for param in command.params:
        if param.metavar is not None or not hasattr(param, "bare_type"):
            continue  # set by hand, or a typer that prints click's labels itself
        if isinstance(param, typer.core.TyperArgument):
            param.metavar = param.name.upper()  # as the usage line and the docstrings say
            bare = param.bare_type().removeprefix("list[").removesuffix("]")
            label = _LABELS.get(bare, "VALUE")
            param.display_type_rich = lambda ctx, label=label: label
        elif param.is_flag or param.count:
            param.metavar = ""
        else:
            bare = param.bare_type().removeprefix("list[").removesuffix("]")
            param.metavar = _LABELS.get(bare, "VALUE")
    made = command.get_help_option  # --help is made per context, after the params

    def help_option(ctx: Any) -> Any:
        option = made(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        plain_labels(sub)


def print_version(value: bool) -> None:
    if value:
        typer.echo(f"vstpipe {__version__}")
        raise typer.Exit()


def listing() -> typer.Typer:
    """An app with the real one's options and command list, whose commands are never run: for
    the help screen and --version only."""
    app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)

    @app.callback()
    def root(
        version: Annotated[bool, typer.Option("--version", callback=print_version,
                                              is_eager=True, help=VERSION_HELP)] = False,
        debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False,
    ) -> None:
        del version, debug

    for name, summary in COMMANDS.items():
        app.command(name, help=summary)(_placeholder)
    return app


def _placeholder() -> None:  # never called: entry.py hands every real command to cli.py
    raise typer.Exit(2)
