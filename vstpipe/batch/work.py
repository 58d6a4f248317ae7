"""One task rendered by a worker that keeps its model: the unit both the local pool and the
Ray actors run.

A worker holds one :class:`~vstpipe.sessions.Sessions` for its life, so each model and each
look's style images load once however many tasks it renders; every task gets a fresh session
(fresh temporal state). A task's failure (a corrupt input, a refused setting, an effect of an
unexpected error) is its outcome, in one line; an interrupt is not caught.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction

from .. import jobs
from ..errors import VstpipeError
from ..media import check_frame_count, open_source
from ..pipeline import check_job, render_source
from ..sessions import Sessions
from .plan import Task

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Outcome:
    output: str  # the task's output path
    status: str  # "done" | "failed" | "skipped" | "interrupted"
    frames: int = 0
    seconds: float = 0.0
    model: str = ""
    error: str = ""  # one line, when failed
    worker: str = ""  # where it ran: "cpu 1", "cuda:0", "ray cuda:0 on HOST"


class FrameReports:
    """A task's progress as ("frames", number, done, total) events, sent with ``send`` at most
    every ``every`` seconds (and always the last frame's)."""

    def __init__(self, number: int, send: Callable[[tuple], None], every: float) -> None:
        self.number, self.send, self.every, self.last = number, send, every, 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.last >= self.every or done == total:
            self.last = now
            self.send(("frames", self.number, done, total))


class Worker:
    """Renders tasks on ``device`` with the models it has loaded so far."""

    def __init__(self, device: str = "auto", offline: bool = False, name: str = "") -> None:
        self.device, self.name = device, name or device
        self.sessions = Sessions(offline)

    def run(self, task: Task, overwrite: bool, progress: Progress | None = None) -> Outcome:
        start = time.perf_counter()
        output = str(task.output)
        try:
            request = replace(task.look.request, device=self.device)
            with open_source(task.input, queue_size=request.queue) as source:
                info = source.info
                job = jobs.resolve(request, Fraction(info.average_rate)
                                   if info.average_rate else None)
                check_job(task.input, task.output, job, overwrite)
                source.trim(job.trim)
                check_frame_count(task.output, source.expected_frames)
                self.sessions.styles(job)
                net = self.sessions.net(job.model)
                self.sessions.notices.clear()
                session = self.sessions.session(job, (info.width, info.height))
                report = render_source(source, task.output, session, overwrite=overwrite,
                                       progress=progress)
        except VstpipeError as exc:
            return Outcome(output, "failed", seconds=time.perf_counter() - start,
                           error=" ".join(str(exc).split()), worker=self.name)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - one task's bug must not end the batch
            return Outcome(output, "failed", seconds=time.perf_counter() - start,
                           error=f"{type(exc).__name__}: {' '.join(str(exc).split())}",
                           worker=self.name)
        return Outcome(output, "done", report.frames, time.perf_counter() - start, net.name,
                       worker=self.name)
