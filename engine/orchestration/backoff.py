"""The delays between failed attempts at something that keeps failing: serving (``carepath up``), restarting the
local Prefect server, restarting an extra serving process (:mod:`engine.orchestration.workers`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """The delays between failed attempts at something that keeps failing (serving, restarting the server):
    ``first`` s, doubling each time up to ``most`` s; an attempt that ran ``healthy_after`` s before it failed
    (serving worked for a while) starts the delays over. ``sleep`` and ``clock`` are injected for tests."""

    first: float = 1.0
    most: float = 60.0
    healthy_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    failures: int = 0

    def next_delay(self) -> float:
        """The delay :meth:`wait` would sleep now."""
        return float(min(self.most, self.first * 2 ** min(self.failures, 32)))

    def wait(self) -> float:
        """Sleep the next delay after a failure (and lengthen the one after); returns the delay slept."""
        delay = self.next_delay()
        self.failures += 1
        self.sleep(delay)
        return delay

    def ran_for(self, seconds: float) -> None:
        """An attempt ran this long before it failed: long enough, and the next delay is ``first`` again."""
        if seconds >= self.healthy_after:
            self.failures = 0
