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

On SQLite the server also tells a client when to try again after a write it refused for the database's lock
(:func:`retry_soon_when_locked`): Prefect answers 503 and its client waits 2, 4, 8, 16 then 32 s between attempts;
a lock conflict (a transaction whose snapshot another writer made stale: refused at once, not after the busy timeout)
clears within a second, so those waits were most of the late escalations' lateness on the embedded default.

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
from typing import Any

__all__ = ["POLL", "RETRY_AFTER", "collect_off_loop", "due_generation", "main", "retry_soon_when_locked", "uses_sqlite"]

#: How often the collector thread looks at the allocation counts (seconds).
POLL = 0.2
#: What a client is told to wait before it tries a write again that the database's lock refused (seconds).
RETRY_AFTER = 1.0


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


def retry_soon_when_locked(after: float = RETRY_AFTER) -> None:
    """Have the server's answer to a retryable database error (a 503) say ``Retry-After: after``: Prefect's client
    then waits that long (and a little jitter) instead of its exponential backoff. Set before the app is made
    (``create_app`` reads the handler when it builds the app); the 500 of any other error is left as it is."""
    from prefect.server.api import server

    prefect_handler = server.custom_internal_exception_handler
    if getattr(prefect_handler, "retry_after", None) is not None:  # installed already: replace, do not stack
        prefect_handler = prefect_handler.wrapped  # type: ignore[attr-defined]

    async def handler(request: Any, exc: Exception) -> Any:
        response = await prefect_handler(request, exc)
        if response.status_code == 503:
            response.headers["Retry-After"] = f"{after:g}"
        return response

    handler.retry_after = after  # type: ignore[attr-defined]
    handler.wrapped = prefect_handler  # type: ignore[attr-defined]
    server.custom_internal_exception_handler = handler


def main() -> None:
    """``prefect`` with the given arguments; on SQLite its collection off the loop and a short Retry-After."""
    if uses_sqlite():
        collect_off_loop()
        retry_soon_when_locked()
    sys.argv = ["prefect", *sys.argv[1:]]
    runpy.run_module("prefect", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
