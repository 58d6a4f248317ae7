"""The tasks of a batch on this machine: one worker process per device, each keeping its model.

Devices: one worker per CUDA GPU; without one, CPU workers sharing the cores (``workers``
processes of ``cores // workers`` torch threads each). Workers are started with ``spawn`` (a
forked torch is not safe), take one task at a time from the coordinator, and report frames and
outcomes on a pipe of their own (a shared queue would stay locked by a worker killed while
writing to it). A worker that dies (killed, out of memory) fails its task with the reason
and is replaced; an interrupt stops every worker with SIGTERM, which unwinds its render like
Ctrl-C (its temp output deleted), so nothing partial is left.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from .plan import Task
from .work import FrameReports, Outcome, Worker

Event = tuple[Any, ...]  # ("frames", number, done, total) | ("finished", number, Outcome)
_PROGRESS_EVERY = 0.25  # seconds between a worker's frame reports


@dataclass(frozen=True)
class Slot:
    """Where one worker runs."""

    device: str  # "cpu", "cuda:0", ...
    threads: int  # torch intra-op threads (CPU workers)
    name: str


def slots(workers: int | None = None) -> list[Slot]:
    """One slot per GPU, else ``workers`` CPU slots (default: one per two cores) sharing the
    cores."""
    import torch

    if torch.cuda.is_available() and workers is None:
        return [Slot(f"cuda:{i}", 1, f"cuda:{i}") for i in range(torch.cuda.device_count())]
    cores = os.cpu_count() or 1
    count = workers or max(1, cores // 2)
    return [Slot("cpu", max(1, cores // count), f"cpu {i + 1}") for i in range(count)]


def _worker_main(slot: Slot, offline: bool, tasks: Any, events: Any) -> None:
    """A worker process: tasks until None; frames and outcomes on its own ``events`` pipe (a
    worker killed mid-message then spoils only its own pipe, never the others')."""
    from .. import signals

    signals.install()  # SIGTERM unwinds the render: its temp output goes
    import torch

    if slot.device == "cpu":
        torch.set_num_threads(slot.threads)
    worker = Worker(slot.device, offline, slot.name)
    try:
        while (item := tasks.get()) is not None:
            number, task, overwrite = item
            events.send(("finished", number,
                         worker.run(task, overwrite,
                                    FrameReports(number, events.send, _PROGRESS_EVERY))))
    except KeyboardInterrupt:
        pass  # stopped by the coordinator (or Ctrl-C): the render above has unwound


class LocalPool:
    """Runs numbered tasks on worker processes; yields events as they come."""

    def __init__(self, slots_: list[Slot], offline: bool = False) -> None:
        self.slots, self.offline = slots_, offline
        self._context = mp.get_context("spawn")
        self._procs: list[Any] = []
        self._queues: list[Any] = []  # tasks to each worker
        self._events: list[Any] = []  # the read end of each worker's event pipe
        self._holding: list[int | None] = []  # the task each worker has, by worker

    def _start(self, index: int) -> None:
        tasks = self._context.Queue()
        reader, writer = self._context.Pipe(duplex=False)
        proc = self._context.Process(target=_worker_main, name=f"vstpipe-batch-{index}",
                                     args=(self.slots[index], self.offline, tasks, writer),
                                     daemon=True)
        proc.start()
        writer.close()  # the worker holds the only write end: its death ends the pipe
        if index < len(self._procs):
            self._events[index].close()
            self._procs[index], self._queues[index] = proc, tasks
            self._events[index], self._holding[index] = reader, None
        else:
            self._procs.append(proc)
            self._queues.append(tasks)
            self._events.append(reader)
            self._holding.append(None)

    def run(self, tasks: list[tuple[int, Task]], overwrite: Callable[[Task], bool]
            ) -> Iterator[Event]:
        pending = list(tasks)
        for index in range(min(len(self.slots), len(tasks))):
            self._start(index)
        try:
            left = len(tasks)
            while left:
                for index, holding in enumerate(self._holding):
                    if holding is None and pending:
                        number, task = pending.pop(0)
                        self._holding[index] = number
                        self._queues[index].put((number, task, overwrite(task)))
                for event in self._receive():
                    if event[0] == "finished":
                        left -= 1
                        if event[1] in self._holding:  # else: its worker died, replaced
                            index = self._holding.index(event[1])
                            self._holding[index] = None
                            if not pending:
                                self._queues[index].put(None)
                    yield event
        finally:
            self.close()

    def _receive(self) -> Iterator[Event]:
        """The events ready within half a second; a finished event (failed) for the task of
        each worker that died, which is replaced."""
        ready = wait(self._events, timeout=0.5)
        for index, reader in enumerate(list(self._events)):
            if reader not in ready:
                continue
            try:
                while reader.poll():
                    yield reader.recv()
            except (EOFError, OSError):
                pass  # the worker is gone: found below
        for index, proc in enumerate(self._procs):
            number = self._holding[index]
            if number is None or proc.is_alive():
                continue
            proc.join()
            code = proc.exitcode
            why = (f"killed by signal {-code} ({signal.Signals(-code).name})" if code and code < 0
                   else f"exit status {code}")
            self._start(index)
            yield ("finished", number, Outcome("", "failed", error=f"the worker process died "
                                                                    f"({why})",
                                               worker=self.slots[index].name))

    def close(self) -> None:
        """Stop every worker: None to the idle ones, SIGTERM to the busy ones (their renders
        unwind and delete their temp output), SIGKILL to any still there after 30 s."""
        for index, proc in enumerate(self._procs):
            if proc.is_alive() and self._holding[index] is None:
                self._queues[index].put(None)
            elif proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + 30
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        for reader in self._events:
            reader.close()
        self._procs, self._queues, self._events, self._holding = [], [], [], []
