"""``carepath up`` retries a failure that keeps coming back with a growing delay, not in a tight loop.

No Prefect server and no wall-clock waits: serving, the server, the clock and ``sleep`` are fakes
(``engine.orchestration.up._serve_with_retries``, ``_wait_for_server`` and :class:`Backoff`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.app import Settings
from engine.errors import OrchestrationError
from engine.orchestration import up
from engine.orchestration.up import Backoff


@dataclass
class FakeTime:
    """A monotonic clock that only moves when something sleeps (or a fake serving process runs)."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def backoff(self) -> Backoff:
        return Backoff(sleep=self.sleep, clock=self.clock)


def test_delays_double_from_one_second_up_to_a_minute() -> None:
    time = FakeTime()
    backoff = time.backoff()
    assert [backoff.wait() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert time.slept == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    backoff.failures = 10_000  # no overflow however long it keeps failing
    assert backoff.wait() == 60


def test_serving_that_keeps_failing_at_once_backs_off() -> None:
    time = FakeTime()
    backoff = time.backoff()
    calls: list[bool] = []
    recovered: list[float] = []

    def serve(first: bool) -> None:
        calls.append(first)
        if len(calls) <= 8:
            raise OrchestrationError("cannot serve deployments: 500 Internal Server Error")

    up._serve_with_retries(serve, lambda: recovered.append(time.now), backoff)

    assert calls == [True] + [False] * 8  # the orphans are taken back from the second attempt on
    assert time.slept == [1, 2, 4, 8, 16, 32, 60, 60]
    assert len(recovered) == 8  # the server is waited for (or restarted) after every delay


def test_serving_that_worked_for_a_while_starts_the_delays_over() -> None:
    time = FakeTime()
    backoff = time.backoff()
    runs = iter([0, 0, 0, 0, 120, 0, 59, 0])  # how long each attempt serves before it fails

    def serve(first: bool) -> None:
        seconds = next(runs, None)
        if seconds is None:
            return  # stopped
        time.now += seconds
        raise OrchestrationError("the Prefect server stopped answering")

    up._serve_with_retries(serve, lambda: None, backoff)

    # 4 fast failures (1, 2, 4, 8), then two minutes of serving: 1 s again; 59 s is not long enough to reset
    assert time.slept == [1, 2, 4, 8, 1, 2, 4, 8]


def test_serving_stopped_normally_is_not_retried() -> None:
    time = FakeTime()
    calls: list[bool] = []
    up._serve_with_retries(calls.append, lambda: pytest.fail("nothing to recover"), time.backoff())
    assert calls == [True] and time.slept == []


class DeadServer:
    """A local server whose process exited."""

    port = 4242
    startup_seconds = 0.0

    def running(self) -> bool:
        return False


class LiveServer(DeadServer):
    startup_seconds = 7.0

    def running(self) -> bool:
        return True


def _settings(tmp_path: Path) -> Settings:
    settings = Settings.from_env({"CAREPATH_HOME": str(tmp_path)})
    settings.api_url_file.write_text("http://127.0.0.1:4242/api")
    return settings


def test_a_server_restart_that_keeps_failing_backs_off(tmp_path: Path) -> None:
    time = FakeTime()
    backoff = time.backoff()
    local = up._Local(server=DeadServer())  # type: ignore[arg-type]
    starts: list[int | None] = []

    def start(settings: Settings, port: int | None) -> LiveServer:
        starts.append(port)
        if len(starts) <= 7:
            raise OrchestrationError("the Prefect server exited with code 1 during startup")
        return LiveServer()

    up._wait_for_server(
        _settings(tmp_path), local, backoff, start=start, reachable=lambda url: isinstance(local.server, LiveServer)
    )

    assert starts == [4242] * 8  # on the same port
    assert time.slept == [1, 2, 4, 8, 16, 32, 60]
    assert isinstance(local.server, LiveServer)


def test_waiting_for_a_server_someone_else_runs_polls_every_two_seconds(tmp_path: Path) -> None:
    time = FakeTime()
    backoff = time.backoff()
    answers = iter([False, False, False, True])

    def start(settings: Settings, port: int | None) -> LiveServer:
        pytest.fail("not ours to restart")

    up._wait_for_server(_settings(tmp_path), up._Local(), backoff, start=start, reachable=lambda url: next(answers))

    assert time.slept == [2.0, 2.0, 2.0]  # a cheap health check, not a retry: the back-off is untouched
    assert backoff.failures == 0
