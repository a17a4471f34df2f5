"""The local Prefect server collects garbage off its event loop (``engine.orchestration.prefect_server``).

The wedge it prevents: a finalizer run by the collector on the loop's thread blocks on something only the loop can
release (an sqlite3 cursor's reset waiting for its connection, whose thread waits for a write lock a coroutine on
the loop holds). The test builds the same shape without SQLite, in a child process (turning collection off in
pytest's own process would change every other test): a cycle whose finalizer waits until the "loop" (the main
thread) answers. With collection on the loop's thread this never finishes; with the collector thread it does.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from engine.orchestration.prefect_server import due_generation, retry_soon_when_locked, uses_sqlite
from engine.orchestration.server import SERVER_MODULE, _is_prefect_server, free_port

CYCLE_WITH_BLOCKING_FINALIZER = textwrap.dedent(
    """
    import sys, threading, time
    from engine.orchestration.prefect_server import collect_off_loop

    entered, answered, finished = threading.Event(), threading.Event(), threading.Event()

    class Cursor:
        def __del__(self):
            entered.set()
            finished.set() if answered.wait(60) else None

    collect_off_loop(poll=0.01)
    cursor = Cursor()
    cursor.cycle = cursor
    del cursor
    # the loop: keeps allocating (as a server does) until the finalizer has started, then answers it
    kept, give_up = [], time.monotonic() + 60
    while not entered.wait(0.01):
        kept += [{} for _ in range(1000)]
        if time.monotonic() > give_up:
            sys.exit(4)  # the collector never ran
    answered.set()
    sys.exit(0 if finished.wait(60) else 3)
    """
)


def test_a_finalizer_waiting_for_the_loop_does_not_wedge_it() -> None:
    done = subprocess.run([sys.executable, "-c", CYCLE_WITH_BLOCKING_FINALIZER], capture_output=True, timeout=150)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_the_collector_picks_the_generation_the_interpreter_would() -> None:
    thresholds = (700, 10, 10)
    assert due_generation((5, 0, 0), thresholds) is None
    assert due_generation((701, 0, 0), thresholds) == 0
    assert due_generation((701, 11, 0), thresholds) == 1
    assert due_generation((0, 11, 11), thresholds) == 2


def test_only_a_sqlite_server_collects_off_its_loop() -> None:
    assert uses_sqlite({})
    assert uses_sqlite({"PREFECT_API_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:////tmp/prefect.db"})
    assert not uses_sqlite({"PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u@h/db"})
    assert not uses_sqlite({"PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u@h/db"})


def test_a_restart_still_recognises_the_server_it_started(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The pid-file take-over reads the command line: the new entry point must still read as a Prefect server."""
    started = "print('started', flush=True); import time; time.sleep(60)"
    child = subprocess.Popen(
        [sys.executable, "-c", started, "-m", SERVER_MODULE, "server", "start", "--port", "4321"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "started\n"  # its command line is its own
        assert _is_prefect_server(child.pid, 4321)
        assert not _is_prefect_server(child.pid, 4322)
    finally:
        child.kill()
        child.wait()


def _locked() -> Exception:
    """What Prefect's server raises when SQLite refuses a write for its lock."""
    import sqlite3

    import sqlalchemy

    return sqlalchemy.exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))


@pytest.fixture
def retry_soon(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Prefect's server module with :func:`retry_soon_when_locked` installed (put back after the test)."""
    from prefect.server.api import server

    monkeypatch.setattr(server, "custom_internal_exception_handler", server.custom_internal_exception_handler)
    yield server


def test_a_write_refused_for_the_lock_tells_the_client_when_to_try_again(retry_soon: Any) -> None:
    """The 503 for SQLite's lock says Retry-After (so Prefect's client does not back off 2-32 s); installing twice
    does not stack; any other error is still a plain 500."""
    retry_soon_when_locked(after=1.0)
    retry_soon_when_locked(after=0.5)
    locked = asyncio.run(retry_soon.custom_internal_exception_handler(None, _locked()))
    assert (locked.status_code, locked.headers["Retry-After"]) == (503, "0.5")
    other = asyncio.run(retry_soon.custom_internal_exception_handler(None, ValueError("a bug")))
    assert other.status_code == 500 and "Retry-After" not in other.headers


def test_prefects_client_tries_again_as_the_server_says(retry_soon: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Over loopback HTTP: an app made with the handler (as ``create_app`` makes Prefect's) refuses the first write
    for the lock, and Prefect's own client waits what it was told (not its 2 s first backoff) and gets the second
    answer."""
    import uvicorn
    from fastapi import FastAPI
    from prefect.client.base import PrefectHttpxAsyncClient

    retry_soon_when_locked(after=0.01)
    attempts: list[int] = []
    app = FastAPI(exception_handlers={Exception: retry_soon.custom_internal_exception_handler})

    @app.post("/write")
    async def write() -> dict[str, int]:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            raise _locked()
        return {"attempt": len(attempts)}

    port = free_port()
    served = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    try:
        while not served.started:
            assert thread.is_alive(), "the loopback app did not start"
            time.sleep(0.01)

        async def call() -> Any:
            async with PrefectHttpxAsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                return await client.post("/write")

        with caplog.at_level(logging.DEBUG, logger="prefect.client"):
            answer = asyncio.run(call())
    finally:
        served.should_exit = True
        thread.join(10)
    assert (answer.status_code, answer.json(), attempts) == (200, {"attempt": 2}, [0, 1])
    # the wait after the 503 is the server's (a retry may also meet the connection uvicorn closed after the 503: that
    # one is Prefect's own backoff, for a transport error)
    told = r"status code 503\. Another attempt will be made in ([0-9.]+)s"
    waits = [float(w) for w in re.findall(told, caplog.text)]
    assert len(waits) == 1 and 0.01 <= waits[0] < 0.1, caplog.text
