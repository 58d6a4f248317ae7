"""The tasks of a batch as Ray actors: one per GPU of the cluster (or CPU actors), each keeping
its model, fed one task at a time by the coordinator.

``address`` is what ``ray.init`` takes: ``"auto"`` for the cluster this machine belongs to (a
head started by ``ray start --head``, or RAY_ADDRESS), ``"ray://HOST:10001"`` for a remote one,
``"local"`` for a Ray instance of this process alone. Inputs and outputs are paths, so every
node must see them at the same place (shared storage), and every node needs vstpipe installed.
Frames are reported through a Ray queue; an interrupt asks each actor to stop (its render
unwinds between frames and deletes its temp output) before the actors are killed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import OptionError
from .plan import Task
from .work import FrameReports, Outcome, Worker

_PROGRESS_EVERY = 0.5  # seconds between an actor's frame reports
_STOP_WAIT = 30.0  # seconds actors get to unwind after an interrupt


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise OptionError("--ray needs Ray: pip install 'vstpipe[ray]'") from None
    return ray


class _Actor:
    """Holds a Worker; `run` renders one task, `stop` (callable while `run` runs) makes the
    render stop at its next frame."""

    def __init__(self, device: str, threads: int, offline: bool, name: str,
                 events: Any) -> None:
        self.device, self.threads = device, threads
        self._threads()
        self.worker = Worker(device, offline, name)
        self.events = events
        self.stopping = threading.Event()

    def _threads(self) -> None:
        """torch's thread count, set in the thread that renders (an actor with concurrency
        runs its methods on threads of its own, and OpenMP's count is per thread)."""
        import torch

        if self.device == "cpu":
            torch.set_num_threads(self.threads)

    def run(self, number: int, task: Task, overwrite: bool) -> Outcome:
        self._threads()
        report = FrameReports(number, self.events.put_nowait, _PROGRESS_EVERY)

        def progress(done: int, total: int | None) -> None:
            if self.stopping.is_set():
                raise KeyboardInterrupt("stopped by the batch")
            report(done, total)

        try:
            return self.worker.run(task, overwrite, progress)
        except KeyboardInterrupt:
            return Outcome(str(task.output), "interrupted", worker=self.worker.name)

    def stop(self) -> None:
        self.stopping.set()


class RayPool:
    """Runs numbered tasks on Ray actors; yields events as LocalPool does."""

    def __init__(self, address: str, offline: bool = False, workers: int | None = None) -> None:
        self.ray = _ray()
        self.address, self.offline, self.workers = address, offline, workers

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        try:
            if self.address == "local":
                ray.init(include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            why = " ".join(str(exc).split())[:200]
            raise OptionError(f"--ray {self.address}: cannot connect ({why}); start a head with "
                              f"`ray start --head`, or use --ray local") from None

    def _shapes(self) -> list[tuple[str, int, dict[str, float], str]]:
        """(device, threads, resources, name) per actor: one per GPU, else CPU actors."""
        total = self.ray.cluster_resources()
        gpus = int(total.get("GPU", 0))
        if gpus and self.workers is None:
            return [("cuda", 1, {"num_gpus": 1}, f"ray gpu {i + 1}") for i in range(gpus)]
        cpus = max(1, int(total.get("CPU", 1)))
        count = self.workers or max(1, cpus // 2)
        each = max(1, cpus // count)
        return [("cpu", each, {"num_cpus": each}, f"ray cpu {i + 1}") for i in range(count)]

    def run(self, tasks: list[tuple[int, Task]], overwrite: Callable[[Task], bool]
            ) -> Iterator[tuple[Any, ...]]:
        if not tasks:
            return
        self._connect()
        ray = self.ray
        from ray.util.queue import Empty, Queue

        events = Queue()
        remote = ray.remote(max_concurrency=2)(_Actor)
        shapes = self._shapes()[:len(tasks)]
        actors = [remote.options(**res).remote(dev, threads, self.offline, name, events)
                  for dev, threads, res, name in shapes]
        pending = list(tasks)
        running: dict[Any, tuple[int, int]] = {}  # ref -> (task number, actor index)

        def feed(index: int) -> None:
            if pending:
                number, task = pending.pop(0)
                ref = actors[index].run.remote(number, task, overwrite(task))
                running[ref] = (number, index)

        try:
            for index in range(len(actors)):
                feed(index)
            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
                try:
                    yield from events.get_nowait_batch(events.qsize())
                except Empty:
                    pass
                for ref in ready:
                    number, index = running.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        outcome = Outcome("", "failed", error=f"the Ray worker failed: "
                                          f"{' '.join(str(exc).split())[:300]}",
                                          worker=shapes[index][3])
                        dev, threads, res, name = shapes[index]
                        actors[index] = remote.options(**res).remote(dev, threads, self.offline,
                                                                     name, events)
                    yield ("finished", number, outcome)
                    feed(index)
        finally:
            if running:  # interrupted: let the renders unwind, then end the actors
                for actor in actors:
                    actor.stop.remote()
                ray.wait(list(running), num_returns=len(running), timeout=_STOP_WAIT)
            for actor in actors:
                ray.kill(actor)
