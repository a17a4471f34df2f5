"""The local Prefect server collects garbage off its event loop (``engine.orchestration.prefect_server``).

The wedge it prevents: a finalizer run by the collector on the loop's thread blocks on something only the loop can
release (an sqlite3 cursor's reset waiting for its connection, whose thread waits for a write lock a coroutine on
the loop holds). The test builds the same shape without SQLite, in a child process (turning collection off in
pytest's own process would change every other test): a cycle whose finalizer waits until the "loop" (the main
thread) answers. With collection on the loop's thread this never finishes; with the collector thread it does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from engine.orchestration.prefect_server import due_generation, uses_sqlite
from engine.orchestration.server import SERVER_MODULE, _is_prefect_server

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
