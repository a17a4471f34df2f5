"""A hung test ends its worker with every thread's stack instead of holding CI to its time limit.

pytest-timeout fails a test from a signal handler, which only runs once the interpreter gets the GIL back: a
deadlock inside C code that holds it (the collector freeing a SQLite cursor whose connection another thread is
using, the shape found in Prefect's own SQLite server) stops it and every Python thread. faulthandler's watchdog is
a C thread: :data:`GRACE` seconds past pytest-timeout's limit it writes every thread's Python stack to the stderr
the session started with (not the test's captured one) and exits the process; pytest-xdist reports the test as
crashed, and the other worker runs the files still to run; the crashed file's other tests are not run
(``--max-worker-restart=0`` in ``pyproject.toml``: a new worker would be given the crashed test again).
"""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterator
from typing import IO

import pytest

#: Seconds past the test's pytest-timeout limit before the watchdog ends the process.
GRACE = float(os.environ.get("CAREPATH_TEST_HANG_GRACE", "120"))

_stderr: IO[str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _stderr
    if _stderr is None:
        _stderr = os.fdopen(os.dup(2), "w")  # before the capture plugin points fd 2 at a test's capture file


def _limit(item: pytest.Item) -> float | None:
    """pytest-timeout's limit for this test (its mark, positional or ``timeout=``, else ``--timeout``, else the ini
    value) plus :data:`GRACE`; None when the test has none."""
    marker = item.get_closest_marker("timeout")
    value: object = None
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("timeout")
    if value is None:
        value = item.config.getoption("timeout", None)
    if value is None:
        value = item.config.getini("timeout")
    limit = float(value or 0)  # type: ignore[arg-type]
    return limit + GRACE if limit > 0 else None


def pytest_unconfigure(config: pytest.Config) -> None:
    global _stderr
    if _stderr is not None:
        faulthandler.cancel_dump_traceback_later()
        _stderr.close()
        _stderr = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    limit = _limit(item)
    if limit is not None and _stderr is not None:
        faulthandler.dump_traceback_later(limit, exit=True, file=_stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
