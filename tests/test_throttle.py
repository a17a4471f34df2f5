"""The throttle of the program-wide artifacts (engine.app.throttle): at most one build per interval, none dropped."""

from __future__ import annotations

import threading
from collections.abc import Callable

from engine.app.throttle import Throttle, after_seconds


def _throttle(every: float) -> tuple[Throttle, list[float], list[tuple[float, Callable[[], None]]]]:
    ticks: list[float] = [0.0]
    later: list[tuple[float, Callable[[], None]]] = []
    throttle = Throttle(every, now=lambda: ticks[0], after=lambda delay, work: later.append((delay, work)))
    return throttle, ticks, later


def test_a_key_runs_at_once_then_at_most_once_per_interval_with_the_last_request_honoured() -> None:
    throttle, ticks, later = _throttle(10.0)
    done: list[str] = []
    assert throttle.due("table", lambda: done.append("trailing"))
    ticks[0] = 3.0
    assert not throttle.due("table", lambda: done.append("trailing"))
    ticks[0] = 5.0
    assert not throttle.due("table", lambda: done.append("second trailing")), "one trailing run is enough"
    assert [delay for delay, _ in later] == [7.0], "when the interval that began at 0 ends"
    assert throttle.due("overview", lambda: None), "each key has its own interval"
    ticks[0] = 10.0
    later[0][1]()
    assert done == ["trailing"]
    ticks[0] = 12.0
    assert not throttle.due("table", lambda: None), "the trailing run began a new interval"
    ticks[0] = 20.0
    assert throttle.due("table", lambda: None)


def test_without_an_interval_every_request_runs_at_once() -> None:
    throttle, _ticks, later = _throttle(0.0)
    assert all(throttle.due("table", lambda: None) for _ in range(3))
    assert later == []


def test_a_failing_trailing_run_is_logged_and_the_next_request_runs(caplog) -> None:  # type: ignore[no-untyped-def]
    throttle, ticks, later = _throttle(10.0)
    assert throttle.due("table", lambda: None)

    def fails() -> None:
        raise RuntimeError("the server is down")

    assert not throttle.due("table", fails)
    later[0][1]()
    assert "table: not refreshed: RuntimeError: the server is down" in caplog.text
    ticks[0] = 30.0
    assert throttle.due("table", lambda: None)


def test_the_trailing_run_happens_on_a_timer_thread_in_the_callers_context() -> None:
    import contextvars

    who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")
    who.set("the run that asked")
    seen: list[str] = []
    ran = threading.Event()
    after_seconds(0.01, lambda: (seen.append(who.get()), ran.set()))
    assert ran.wait(30)
    assert seen == ["the run that asked"]
