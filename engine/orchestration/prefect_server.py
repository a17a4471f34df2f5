"""The local Prefect server's entry point: ``prefect server start``, with its garbage collection off the event loop.

Why: Prefect's server on SQLite wedged under a caseload (1,000 episodes): its write lock stayed held for minutes
while the server did nothing, and every write was answered 503. A native stack of the server at the wedge showed
the cause, a deadlock between Python's garbage collector and aiosqlite:

1. the event loop's thread allocates, so the collector runs there and frees an orphaned sqlite3 cursor of
   connection X (cursors in reference cycles are freed only by the collector);
2. freeing a cursor resets its statement, which takes X's mutex (``cursor_dealloc`` -> ``sqlite3_reset``);
3. X's mutex is held by X's aiosqlite thread, which sleeps in SQLite's busy handler (``busy_timeout`` = 60 s,
   set by Prefect) waiting for the write lock;
4. the write lock is held by connection Y, whose transaction only a coroutine on the event loop can finish, and
   the loop is stuck in step 1.

Nothing moves until X's busy timeout expires (60 s); then the next collection can do the same. Here automatic
collection is turned off and a daemon thread collects instead: when it blocks on X's mutex it has released the
GIL, the loop goes on, Y commits, X gets the lock and finishes its statement, and the collector proceeds. The
collector runs each generation as the interpreter would (by the same allocation counts and thresholds), polled
every :data:`POLL` seconds. Only for SQLite: PostgreSQL (asyncpg) has no such threads, and its objects' finalizers
expect the loop's thread.

Run as ``python -m engine.orchestration.prefect_server server start --host H --port P`` (the same arguments as
``prefect``); :func:`engine.orchestration.server.spawn_local_server` does.
"""

from __future__ import annotations

import gc
import os
import runpy
import sys
import threading
import time
from collections.abc import Mapping

__all__ = ["POLL", "collect_off_loop", "due_generation", "main", "uses_sqlite"]

#: How often the collector thread looks at the allocation counts (seconds).
POLL = 0.2


def due_generation(counts: tuple[int, int, int], thresholds: tuple[int, int, int]) -> int | None:
    """The oldest generation the interpreter would collect now (None: none is due), as CPython decides it."""
    for generation in (2, 1, 0):
        if thresholds[generation] and counts[generation] > thresholds[generation]:
            return generation
    return None


def collect_off_loop(poll: float = POLL) -> threading.Thread:
    """Turn automatic collection off and collect on a daemon thread instead (see the module docstring)."""

    def loop() -> None:
        while True:
            time.sleep(poll)
            generation = due_generation(gc.get_count(), gc.get_threshold())
            if generation is not None:
                gc.collect(generation)

    gc.disable()
    thread = threading.Thread(target=loop, name="carepath-gc", daemon=True)
    thread.start()
    return thread


def uses_sqlite(environ: Mapping[str, str] = os.environ) -> bool:
    """True when the server's database is SQLite (Prefect's default when no connection URL is set)."""
    url = environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL") or environ.get("PREFECT_API_DATABASE_CONNECTION_URL")
    return not url or url.startswith("sqlite")


def main() -> None:
    """``prefect`` with the given arguments, its collection off the loop when the database is SQLite."""
    if uses_sqlite():
        collect_off_loop()
    sys.argv = ["prefect", *sys.argv[1:]]
    runpy.run_module("prefect", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
