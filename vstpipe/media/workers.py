"""Worker threads: one daemon thread and the bounded queue between it and its caller.

Four threads work this way: the decode thread (media.decode) and the raw reader (rawio)
make items for their caller, a :class:`Producer`; the encode thread (media.encode) and the
raw writer (rawio) work through what their caller queues, a :class:`Consumer`. The queue
is bounded, so memory is; a put gives up once the other side has stopped, so no side
hangs on a queue nobody serves; and what ends the thread early is kept for the caller to
raise on its own thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

POLL_S: Final = 0.05  # how often a blocked put or take re-checks that the other side is there


class _End:
    """Queue marker: the producer has nothing more to send."""


END: Final = _End()


def join(thread: threading.Thread) -> None:
    """Join even if Ctrl-C arrives meanwhile: FFmpeg state must not be freed under a worker.

    The Ctrl-C is re-raised once the thread has ended; returns at once if it never started.
    """
    interrupted: KeyboardInterrupt | None = None
    while thread.is_alive():
        try:
            thread.join(POLL_S)
        except KeyboardInterrupt as err:
            interrupted = err
    if interrupted is not None:
        raise interrupted


class _Worker:
    """A daemon thread running ``run``, and the bounded queue it shares with its caller.

    When ``run`` ends, what it raised is kept in :attr:`error` and :attr:`stop` is set.
    The thread is a daemon: one blocked on a pipe nobody serves must not keep the process.
    """

    def __init__(self, run: Callable[[], None], *, name: str, queue_size: int) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(queue_size)
        self.stop = threading.Event()  # either side is done: puts and takes give up
        self.error: BaseException | None = None  # what ended ``run``, for the caller to raise
        self.thread = threading.Thread(target=self._main, args=(run,), name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def put(self, item: object) -> bool:
        """Block until ``item`` is queued; False once :attr:`stop` is set."""
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=POLL_S)
            except queue.Full:
                continue
            return True
        return False

    def join(self) -> None:
        """Wait for the thread to end, through a Ctrl-C (see :func:`join`)."""
        join(self.thread)

    def halt(self) -> None:
        """Stop the thread, free what it queued and wait for it (see :func:`join`)."""
        self.stop.set()
        try:
            # Frees queued frames at once rather than whenever the worker notices the stop.
            while True:
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    break
        finally:
            join(self.thread)

    def _main(self, run: Callable[[], None]) -> None:
        try:
            run()
        except BaseException as err:  # noqa: BLE001 - every failure must reach the caller
            self.error = err
        finally:
            self._ended()
            self.stop.set()

    def _ended(self) -> None:
        """What the thread does last, after :attr:`error` is set."""


class Producer(_Worker):
    """A thread that makes items for its caller: ``run`` calls :meth:`put` for each.

    The caller iterates :meth:`results`, then raises :attr:`error` if it is set.
    """

    def results(self) -> Iterator[Any]:
        """The items in the order put, until the thread has ended."""
        while True:
            item = self.queue.get()
            if item is END:
                return
            yield item

    def _ended(self) -> None:
        self.put(END)  # after the error is set, so the caller sees it when results() ends


class Consumer(_Worker):
    """A thread that works through what its caller sends: ``run`` iterates :meth:`requests`.

    The caller queues items and then END with :meth:`send` and joins; or, to abandon the
    work, sets :attr:`stop`.
    """

    def send(self, item: object) -> bool:
        """Queue ``item`` for the thread; False if the thread takes no more.

        Raises what ended the thread early as soon as it is known.
        """
        if self.error is None and self.put(item):
            return True
        if self.error is not None:
            raise self.error
        return False

    def requests(self) -> Iterator[Any]:
        """The caller's items in the order sent, until END or until :attr:`stop` is set.

        ``stop`` is set only by the caller here (the thread sets it when it ends), so
        after the loop ``stop.is_set()`` tells an abandoned stream from a finished one.
        """
        while not self.stop.is_set():
            try:
                item = self.queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is END:
                return
            yield item
