"""Progress display for long jobs: a rich bar on a terminal, plain lines in logs and pipes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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

from .pipeline import Progress as ProgressFn


class _Lines:
    """Plain progress lines, at most one every ``every`` seconds, plus the final one."""

    def __init__(self, label: str, every: float = 2.0) -> None:
        self.label, self.every = label, every
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int, total: int | None) -> None:
        now = time.perf_counter()
        if now - self.last < self.every and done != total:
            return
        self.last = now
        fps = done / max(now - self.start, 1e-9)
        of = f"/{total}" if total else ""
        eta = f", ETA {max(total - done, 0) / fps:.0f} s" if total and fps > 0 else ""
        sys.stderr.write(f"{self.label}: {done}{of} frames, {fps:.2f} fps{eta}\n")


@contextmanager
def frames(label: str) -> Iterator[ProgressFn]:
    """A (done, total) callback that shows frames done/total, fps and ETA."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield _Lines(label)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:.2f} fps"), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(label, total=None, fps=0.0)
        start = time.perf_counter()

        def update(done: int, total: int | None) -> None:
            fps = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, completed=done, total=max(total or 0, done) or None, fps=fps)

        yield update


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
