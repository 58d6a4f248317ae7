"""Tests of vstpipe.media.workers: the thread and bounded queue behind Source, Sink and rawio."""

from __future__ import annotations

import threading

import pytest

from vstpipe.media.workers import END, Consumer, Producer, join


def test_producer_hands_over_every_item_then_its_error():
    def run() -> None:
        for n in range(5):
            worker.put(n)
        raise ValueError("boom")

    worker = Producer(run, name="test-producer", queue_size=2)
    worker.start()
    assert list(worker.results()) == [0, 1, 2, 3, 4]
    assert isinstance(worker.error, ValueError)
    worker.join()
    assert worker.stop.is_set()


def test_a_halted_producer_stops_even_with_a_full_queue():
    def run() -> None:
        while worker.put("frame"):
            pass

    worker = Producer(run, name="test-producer", queue_size=1)
    worker.start()
    next(worker.results())
    worker.halt()
    assert not worker.thread.is_alive() and worker.error is None


def test_consumer_works_through_what_is_sent_until_end():
    done: list[object] = []

    def run() -> None:
        done.extend(worker.requests())
        done.append("finished" if not worker.stop.is_set() else "abandoned")

    worker = Consumer(run, name="test-consumer", queue_size=1)
    worker.start()
    assert all(worker.send(n) for n in range(3))
    worker.send(END)
    worker.join()
    assert done == [0, 1, 2, "finished"]
    assert not worker.send(3)  # the thread has ended: it takes no more


def test_an_abandoned_consumer_is_told_so():
    started, done = threading.Event(), []

    def run() -> None:
        started.set()
        done.extend(worker.requests())
        done.append("finished" if not worker.stop.is_set() else "abandoned")

    worker = Consumer(run, name="test-consumer", queue_size=1)
    worker.start()
    started.wait()
    worker.stop.set()
    worker.join()
    assert done == ["abandoned"]


def test_send_raises_what_stopped_the_consumer():
    def run() -> None:
        for _ in worker.requests():
            raise OSError("disk full")

    worker = Consumer(run, name="test-consumer", queue_size=1)
    worker.start()
    worker.send("frame")
    worker.join()
    with pytest.raises(OSError, match="disk full"):
        worker.send("next frame")


def test_join_waits_through_ctrl_c_and_then_raises_it(monkeypatch):
    release = threading.Event()
    thread = threading.Thread(target=release.wait, daemon=True)
    thread.start()
    real_join, calls = thread.join, []

    def join_once_interrupted(timeout: float | None = None) -> None:
        calls.append(timeout)
        if len(calls) == 1:
            release.set()  # the worker finishes while the Ctrl-C unwinds
            raise KeyboardInterrupt
        real_join(timeout)

    monkeypatch.setattr(thread, "join", join_once_interrupted)
    with pytest.raises(KeyboardInterrupt):
        join(thread)
    assert not thread.is_alive() and len(calls) >= 2


def test_join_of_a_thread_never_started_returns_at_once():
    join(threading.Thread(target=lambda: None))
