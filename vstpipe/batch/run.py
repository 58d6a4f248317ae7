"""Running a plan: skip what is done, render the rest on a pool, record and sum up.

The coordinator alone reads and writes the ledger; the pool (local processes or Ray actors)
only renders. Outcomes come back in the order they finish; the summary lists them in the
plan's order.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ..errors import OptionError, OutputError, VstpipeError
from ..media import open_source
from . import segments as segmenting
from .ledger import Ledger
from .plan import Plan, Task
from .work import Outcome


class Pool(Protocol):
    def run(self, tasks: list[tuple[int, Task]], overwrite: Callable[[Task], bool]
            ) -> Iterator[tuple[Any, ...]]: ...


@dataclass
class Summary:
    plan: Plan
    outcomes: list[Outcome] = field(default_factory=list)  # in the plan's order
    interrupted: KeyboardInterrupt | None = None  # what stopped the batch early, if anything

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[tuple[Task, Outcome]]:
        return [(t, o) for t, o in zip(self.plan.tasks, self.outcomes, strict=True)
                if o.status != "done" and o.status != "skipped"]

    def as_json(self) -> dict[str, Any]:
        return {"source": self.plan.source, "out_dir": str(self.plan.out_dir),
                "done": self.count("done"), "skipped": self.count("skipped"),
                "failed": self.count("failed"), "interrupted": self.count("interrupted"),
                "tasks": [{"input": str(t.input), "look": t.look.name, "output": str(t.output),
                           "status": o.status, "frames": o.frames,
                           "seconds": round(o.seconds, 3), "model": o.model,
                           "worker": o.worker, "error": o.error}
                          for t, o in zip(self.plan.tasks, self.outcomes, strict=True)]}


class Listener(Protocol):
    def frames(self, task: Task, done: int, total: int | None) -> None: ...

    def finished(self, task: Task, outcome: Outcome) -> None: ...


def run(plan: Plan, pool: Pool, *, overwrite: bool = False,
        listener: Listener | None = None, segments: int = 1,
        warmup: int = segmenting.WARMUP) -> Summary:
    """Render the plan's tasks that are not done; with ``segments`` > 1 each input is split
    into that many parts at keyframes, rendered in parallel and joined (segments.py). An
    interrupt (KeyboardInterrupt, SIGTERM) stops the pool, whose workers delete their partial
    outputs; the summary then says which tasks were interrupted and carries the interrupt."""
    ledger = Ledger.open(plan.out_dir)
    try:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"out_dir {plan.out_dir}: cannot create it ({exc.strerror})") from None
    results: dict[int, Outcome] = {}
    hashes: dict[int, str] = {}
    units: list[tuple[int, Task]] = []  # what the pool renders: (task number, task or part)
    split: dict[int, _Split] = {}
    for number, task in enumerate(plan.tasks):
        hashes[number] = task.settings_hash()
        if ledger.is_done(task.output, hashes[number]):
            entry = ledger.done[task.output.name]
            results[number] = Outcome(str(task.output), "skipped", entry.get("frames", 0))
            continue
        if segments > 1:
            try:
                parts = _Split.of(task, segments, warmup)
            except VstpipeError as exc:
                results[number] = Outcome(str(task.output), "failed",
                                          error=" ".join(str(exc).split()))
                continue
            if parts is not None:
                split[number] = parts
                units += [(number, part) for part in parts.tasks]
                continue
        units.append((number, task))
    if listener is not None:
        for number, outcome in sorted(results.items()):
            listener.finished(plan.tasks[number], outcome)
    mine = {part.output for parts in split.values() for part in parts.tasks}
    replaceable = lambda task: overwrite or ledger.knows(task.output) or task.output in mine
    events = pool.run(list(enumerate(t for _, t in units)), replaceable)
    interrupted = None
    try:
        for event in events:
            number, unit = units[event[1]]
            task = plan.tasks[number]
            if event[0] == "frames":
                if listener is not None:
                    listener.frames(unit, event[2], event[3])
                continue
            outcome = event[2]
            if number in split:
                if listener is not None:
                    listener.frames(unit, 0, None)  # its frames count again once joined
                outcome = split[number].finished(unit, outcome, overwrite or
                                                 ledger.knows(task.output))
                if outcome is None:
                    continue  # more parts to come
            if outcome.status == "done":
                ledger.record(task.output, hashes[number], outcome.frames, outcome.seconds)
            results[number] = outcome
            if listener is not None:
                listener.finished(task, outcome)
    except KeyboardInterrupt as exc:
        interrupted = exc
    finally:
        events.close()  # the pool stops its workers now, not when the generator is collected
        for parts in split.values():
            parts.clean()
    _fill(plan, results, "interrupted")
    return Summary(plan, [results[n] for n in range(len(plan.tasks))], interrupted)


class _Split:
    """One task rendered as parts: their tasks, their outcomes so far, the join at the end."""

    def __init__(self, task: Task, parts: list[segmenting.Part], tasks: list[Task]) -> None:
        self.task, self.parts, self.tasks = task, parts, tasks
        self.outcomes: dict[Path, Outcome] = {}

    @classmethod
    def of(cls, task: Task, count: int, warmup: int) -> _Split | None:
        """The parts of ``task``, or None when the input splits into one."""
        request = task.look.request
        if request.start or request.duration or request.end:
            raise OptionError(f"look '{task.look.name}': segments split the whole input; "
                              f"remove start, duration and end from the look")
        times, keys = segmenting.frame_times(task.input)
        parts = segmenting.split(times, keys, count,
                                 warmup if segmenting.temporal_on(task.look) else 0)
        if len(parts) < 2:
            return None
        with open_source(task.input) as source:
            deep = source.info.bit_depth > 8
        tasks = segmenting.part_tasks(task, parts, deep)
        try:
            tasks[0].output.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{tasks[0].output.parent}: cannot create it "
                              f"({exc.strerror})") from None
        return cls(task, parts, tasks)

    def finished(self, part: Task, outcome: Outcome, overwrite: bool) -> Outcome | None:
        """None until every part is in; then the task's outcome, the parts joined if all
        were rendered."""
        self.outcomes[part.output] = outcome
        if len(self.outcomes) < len(self.tasks):
            return None
        worked = sum(o.seconds for o in self.outcomes.values())
        bad = [o for o in self.outcomes.values() if o.status != "done"]
        if bad:
            return replace(bad[0], output=str(self.task.output), seconds=worked)
        start = time.perf_counter()
        try:
            frames = segmenting.join(self.task, self.parts, [t.output for t in self.tasks],
                                     overwrite)
        except VstpipeError as exc:
            return Outcome(str(self.task.output), "failed", seconds=worked,
                           error=" ".join(str(exc).split()))
        finally:
            self.clean()
        first = next(iter(self.outcomes.values()))
        return Outcome(str(self.task.output), "done", frames,
                       worked + time.perf_counter() - start, first.model,
                       worker=f"{len(self.tasks)} parts")

    def clean(self) -> None:
        """Delete the part files (and their folder once empty)."""
        for task in self.tasks:
            task.output.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.tasks[0].output.parent.rmdir()


def _fill(plan: Plan, results: dict[int, Outcome], status: str) -> None:
    for number, task in enumerate(plan.tasks):
        results.setdefault(number, Outcome(str(task.output), status))


def table(summary: Summary) -> Iterable[str]:
    """The summary as lines of a plain table."""
    rows = [(t.input.name, t.look.name, o.status, str(o.frames) if o.frames else "",
             f"{o.frames / o.seconds:.2f}" if o.status == "done" and o.seconds > 0 else "",
             o.error) for t, o in zip(summary.plan.tasks, summary.outcomes, strict=True)]
    head = ("input", "look", "status", "frames", "fps", "why")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    for row in [head, *rows]:
        yield "  ".join(c.ljust(w) for c, w in zip(row[:5], widths, strict=True)) + \
            (f"  {row[5]}" if row[5] else "")
