"""At most one run of a piece of work per interval, with the last request honoured: for artifacts that show a
state (the program's open escalations, its overview), where only the latest version matters.

Why: every batch of follow-ups rebuilt and sent the program-wide artifacts (a read of every open escalation, and
a table as large as the caseload's open escalations): at 1,000 episodes on a compressed clock that was a third of
all the writes Prefect's server received (about three versions a second of each), and it grows with the caseload.
With a throttle a key is built at most once per ``every`` seconds per process; a request inside the interval is
not dropped but runs once when the interval ends (on a timer thread, in the requester's context), so what
operators see is never older than the interval.

Time is real elapsed time (:func:`time.monotonic`, injectable): this bounds a process's work, it is not pathway
time. ``every`` = 0 (the in-memory App of tests and simulations) runs every request at once.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Throttle", "after_seconds"]

logger = logging.getLogger("carepath.throttle")


def after_seconds(delay: float, work: Callable[[], None]) -> None:
    """Run ``work`` on a daemon timer thread after ``delay`` seconds, in a copy of the caller's context."""
    timer = threading.Timer(delay, contextvars.copy_context().run, args=(work,))
    timer.daemon = True
    timer.start()


class Throttle:
    """Per key, at most one run per ``every`` seconds (see the module docstring)."""

    def __init__(
        self,
        every: float = 0.0,
        *,
        now: Callable[[], float] = time.monotonic,
        after: Callable[[float, Callable[[], None]], None] = after_seconds,
    ) -> None:
        self.every = every
        self._now = now
        self._after = after
        self._last: dict[str, float] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def due(self, key: str, trailing: Callable[[], None]) -> bool:
        """True if ``key``'s work may run now (the caller runs it; its slot is taken). False if it ran less than
        ``every`` seconds ago: then ``trailing`` runs once when the interval ends (unless a run is already set)."""
        if self.every <= 0:
            return True
        with self._lock:
            now = self._now()
            last = self._last.get(key)
            if last is None or now - last >= self.every:
                self._last[key] = now
                return True
            if key in self._pending:
                return False
            self._pending.add(key)
            delay = self.every - (now - last)
        self._after(delay, lambda: self._trail(key, trailing))
        return False

    def _trail(self, key: str, work: Callable[[], None]) -> None:
        with self._lock:
            self._pending.discard(key)
            self._last[key] = self._now()
        try:
            work()
        except Exception as exc:  # a timer thread has no caller to tell: the next request runs it again
            logger.warning("%s: not refreshed: %s: %s", key, type(exc).__name__, exc)
