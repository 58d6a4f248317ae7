"""Running a plan: skip what is done, render the rest on a pool, record and sum up.

The coordinator alone reads and writes the ledger; the pool (local processes or Ray actors)
only renders. Outcomes come back in the order they finish; the summary lists them in the
plan's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import OutputError
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
        listener: Listener | None = None) -> Summary:
    """Render the plan's tasks that are not done. An interrupt (KeyboardInterrupt, SIGTERM)
    stops the pool, whose workers delete their partial outputs; the summary then says which
    tasks were interrupted and carries the interrupt."""
    ledger = Ledger.open(plan.out_dir)
    try:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"out_dir {plan.out_dir}: cannot create it ({exc.strerror})") from None
    results: dict[int, Outcome] = {}
    hashes: dict[int, str] = {}
    todo: list[tuple[int, Task]] = []
    for number, task in enumerate(plan.tasks):
        hashes[number] = task.settings_hash()
        if ledger.is_done(task.output, hashes[number]):
            entry = ledger.done[task.output.name]
            results[number] = Outcome(str(task.output), "skipped", entry.get("frames", 0))
        else:
            todo.append((number, task))
    if listener is not None:
        for number, outcome in results.items():
            listener.finished(plan.tasks[number], outcome)
    replaceable = lambda task: overwrite or ledger.knows(task.output)
    events = pool.run(todo, replaceable)
    interrupted = None
    try:
        for event in events:
            number = event[1]
            task = plan.tasks[number]
            if event[0] == "frames":
                if listener is not None:
                    listener.frames(task, event[2], event[3])
                continue
            outcome = event[2]
            if outcome.status == "done":
                ledger.record(task.output, hashes[number], outcome.frames, outcome.seconds)
            results[number] = outcome
            if listener is not None:
                listener.finished(task, outcome)
    except KeyboardInterrupt as exc:
        interrupted = exc
    finally:
        events.close()  # the pool stops its workers now, not when the generator is collected
    _fill(plan, results, "interrupted")
    return Summary(plan, [results[n] for n in range(len(plan.tasks))], interrupted)


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
