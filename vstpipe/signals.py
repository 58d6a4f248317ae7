"""Termination signals as exceptions, so every cleanup path that Ctrl-C takes runs for them too.

A batch farm stops a job with SIGTERM and a closed terminal sends SIGHUP; by default both kill
Python without unwinding, leaving temp files and sockets behind. Raised as :class:`Terminated`
(a KeyboardInterrupt) in the main thread, they unwind like Ctrl-C: temp outputs are deleted,
sockets removed, checkpoints saved, and the process exits 128 + the signal's number.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Final

_CAUGHT: Final = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived; unwinds like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def install() -> None:
    """Turn SIGTERM and SIGHUP into Terminated in the main thread (call from the main thread)."""
    for signum in _CAUGHT:
        # A signal the parent set to be ignored (nohup) stays ignored.
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _raise)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The shell's convention: 128 + the signal's number (130 for Ctrl-C)."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)
