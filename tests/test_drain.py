"""The queue a long-lived process hands work over to (:class:`engine.orchestration.drain.Drain`): everything
handed over is done once, in order, in batches when it comes faster than the work takes, each batch in its
first item's context, and one failing batch does not stop the ones after it."""

from __future__ import annotations

import contextvars
import threading

from engine.orchestration.drain import Drain

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_items_come_out_once_in_order_batched_while_the_work_is_busy() -> None:
    started, go = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def work(batch: list[int]) -> None:
        started.set()
        assert go.wait(30)
        batches.append(batch)

    drain = Drain("test-drain", work, most=3)
    drain.put(0)
    assert started.wait(30)  # the first batch is busy: the next items queue up meanwhile
    for item in range(1, 8):
        drain.put(item)
    assert drain.unfinished == 8
    go.set()
    assert drain.flush(30)
    assert batches == [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert drain.unfinished == 0


def test_a_batch_runs_in_its_first_items_context_and_a_failure_does_not_stop_the_next() -> None:
    seen: list[tuple[str, list[str]]] = []

    def work(batch: list[str]) -> None:
        seen.append((WHO.get(), batch))
        if "bad" in batch:
            raise RuntimeError("the store refused")

    drain = Drain("test-drain", work, most=1)
    for who, item in (("alice", "bad"), ("bob", "good")):
        token = WHO.set(who)
        drain.put(item)
        WHO.reset(token)
    assert drain.flush(30)
    assert seen == [("alice", ["bad"]), ("bob", ["good"])]


def test_flush_says_when_work_is_still_under_way() -> None:
    go = threading.Event()
    drain: Drain[int] = Drain("test-drain", lambda _batch: go.wait(30) and None, most=10)
    drain.put(1)
    assert not drain.flush(0.1)
    go.set()
    assert drain.flush(30)
