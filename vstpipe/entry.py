"""The `vstpipe` process: signals first, then the heavy imports, then the CLI.

Importing the CLI loads torch, PyAV and OpenCV, which takes seconds; a Ctrl-C or SIGTERM in that
window must still end with one line, not a traceback.
"""

from __future__ import annotations

import sys

from vstpipe import signals


def main() -> None:
    signals.install()
    try:
        from vstpipe.cli import main as cli_main
    except KeyboardInterrupt as interrupt:
        sys.stderr.write("vstpipe: interrupted while starting; nothing was written\n")
        sys.exit(signals.exit_code(interrupt))
    cli_main()
