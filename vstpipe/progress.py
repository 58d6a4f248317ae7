"""Progress display for long jobs: a rich bar on a terminal, plain lines in logs and pipes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class FrameProgress(Protocol):
    """A (done, total) callback that is also told the start-up stages before frames flow."""

    def __call__(self, done: int, total: int | None) -> None: ...

    def stage(self, text: str) -> None: ...


class Silent:
    """Progress that shows nothing (--quiet)."""

    def __call__(self, done: int, total: int | None) -> None:
        pass

    def stage(self, text: str) -> None:
        pass


class _Lines:
    """Plain progress lines, at most one every ``every`` seconds, plus the final one; each
    start-up stage as a line of its own."""

    def __init__(self, label: str, every: float = 2.0) -> None:
        self.label, self.every = label, every
        self.start = self.last = time.perf_counter()
        self._said = ""

    def stage(self, text: str) -> None:
        if text != self._said:
            self._said = text
            sys.stderr.write(f"{self.label}: {text}\n")
        self.start = self.last = time.perf_counter()  # fps counts from the first frame

    def __call__(self, done: int, total: int | None) -> None:
        now = time.perf_counter()
        if now - self.last < self.every and done != total:
            return
        self.last = now
        fps = done / max(now - self.start, 1e-9)
        of = f"/{total}" if total else ""
        eta = f", ETA {max(total - done, 0) / fps:.0f} s" if total and fps > 0 else ""
        sys.stderr.write(f"{self.label}: {done}{of} frames, {fps:.2f} fps{eta}\n")


class _Bar:
    """A rich bar: the stage in its description until frames flow, then done/total, fps, ETA."""

    def __init__(self, bar: Progress, label: str) -> None:
        self.bar, self.label = bar, label
        self.task = bar.add_task(label, total=None, fps=0.0)
        self.start = time.perf_counter()

    def stage(self, text: str) -> None:
        self.bar.update(self.task, description=f"{self.label}: {text}")
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int | None) -> None:
        fps = done / max(time.perf_counter() - self.start, 1e-9)
        self.bar.update(self.task, description=self.label, completed=done,
                        total=max(total or 0, done) or None, fps=fps)


@contextmanager
def frames(label: str, quiet: bool = False) -> Iterator[FrameProgress]:
    """Frames done/total, fps and ETA, and the start-up stages before them; nothing when
    ``quiet``."""
    console = Console(stderr=True)
    if quiet:
        yield Silent()
        return
    if not console.is_terminal:
        yield _Lines(label)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:.2f} fps"), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        yield _Bar(bar, label)


@contextmanager
def downloads() -> Iterator[Callable[[str, int, int | None], None]]:
    """A (file name, bytes done, bytes total) callback for model downloads."""
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        tasks: dict[str, int] = {}

        def update(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
                if not console.is_terminal:
                    sys.stderr.write(f"downloading {name}\n")
            bar.update(tasks[name], completed=done, total=total)

        yield update


@contextmanager
def training(label: str) -> Iterator[Callable[[int, int, dict[str, float]], None]]:
    """A (step, steps, loss terms) callback: a bar with every term, or a line every 10 s."""
    console = Console(stderr=True)

    def shown(terms: dict[str, float]) -> str:
        return "  ".join(f"{k} {v:.4g}" for k, v in terms.items())

    if not console.is_terminal:
        last = [0.0]

        def line(step: int, steps: int, terms: dict[str, float]) -> None:
            now = time.perf_counter()
            if now - last[0] >= 10 or step == steps:
                last[0] = now
                sys.stderr.write(f"{label}: step {step}/{steps}  {shown(terms)}\n")

        yield line
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[terms]}"))
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(label, total=None, terms="")

        def update(step: int, steps: int, terms: dict[str, float]) -> None:
            bar.update(task, completed=step, total=steps, terms=shown(terms))

        yield update


class BatchProgress:
    """A batch's progress: one overall line (jobs done of all, frames, fps, ETA) and a line
    per finished job. Tasks need ``label``; outcomes ``status``, ``frames``, ``seconds``,
    ``error``."""

    def __init__(self, total: int, write: Callable[[str], None],
                 overall: Callable[[str, int], None], every: float = 5.0) -> None:
        self.total, self._write, self._overall, self.every = total, write, overall, every
        self.finished_count, self.frames_done = 0, 0
        self._running: dict[str, int] = {}  # frames of the tasks in progress, by label
        self.start = self._last = time.perf_counter()

    def _update(self) -> None:
        now = time.perf_counter()
        frames = self.frames_done + sum(self._running.values())
        fps = frames / max(now - self.start, 1e-9)
        left = self.total - self.finished_count
        rate = self.finished_count / max(now - self.start, 1e-9)
        eta = f", ETA {left / rate:.0f} s" if self.finished_count and left else ""
        self._overall(f"batch: {self.finished_count}/{self.total} jobs, {frames} frames, "
                      f"{fps:.2f} fps{eta}", self.finished_count)

    def frames(self, task: object, done: int, total: int | None) -> None:
        self._running[task.label] = done  # type: ignore[attr-defined]
        if time.perf_counter() - self._last >= self.every:
            self._last = time.perf_counter()
            self._update()

    def finished(self, task: object, outcome: object) -> None:
        label = task.label  # type: ignore[attr-defined]
        self._running.pop(label, None)
        self.finished_count += 1
        status, frames = outcome.status, outcome.frames  # type: ignore[attr-defined]
        if status == "done":
            self.frames_done += frames
            seconds = outcome.seconds  # type: ignore[attr-defined]
            self._write(f"done {label} ({frames} frames, {frames / max(seconds, 1e-9):.2f} fps)")
        elif status == "skipped":
            self._write(f"skipped {label} (done before, same settings)")
        else:
            self._write(f"{status.upper()} {label}: {outcome.error}")  # type: ignore[attr-defined]
        self._update()


@contextmanager
def batch(total: int, quiet: bool = False) -> Iterator[BatchProgress]:
    """A rich bar over the jobs on a terminal, plain lines elsewhere; lines only when quiet
    is off."""
    console = Console(stderr=True)
    if quiet:
        yield BatchProgress(total, lambda _: None, lambda _text, _done: None)
        return
    if not console.is_terminal:
        yield BatchProgress(total, lambda line: sys.stderr.write(line + "\n"),
                            lambda text, _done: sys.stderr.write(text + "\n"))
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("batch", total=total)
        yield BatchProgress(total, lambda line: bar.console.print(line, markup=False,
                                                                  highlight=False),
                            lambda text, done: bar.update(task, description=text,
                                                          completed=done), every=0.5)
