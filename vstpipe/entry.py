"""The `vstpipe` process: signals first, then the heavy imports, then the CLI.

Importing the CLI loads torch, PyAV and OpenCV, which takes seconds; a Ctrl-C or SIGTERM in that
window must still end with one line, not a traceback. ``vstpipe``, ``vstpipe --help`` and
``vstpipe --version`` load none of it: the command list (commands.py) answers them.
"""

from __future__ import annotations

import sys

from vstpipe import signals

# What is answered from the command list alone (commands.py), without loading the commands.
_LISTING = ([], ["--help"], ["--version"])


def main() -> None:
    signals.install()
    if sys.argv[1:] in _LISTING:
        import typer.main

        from vstpipe import commands

        listing = typer.main.get_command(commands.listing())
        commands.plain_labels(listing)
        listing(prog_name="vstpipe")
        return
    try:
        from vstpipe.cli import main as cli_main
    except KeyboardInterrupt as interrupt:
        sys.stderr.write("vstpipe: interrupted while starting; nothing was written\n")
        sys.exit(signals.exit_code(interrupt))
    cli_main()
