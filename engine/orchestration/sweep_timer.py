"""The serving process's sweep timer (:func:`engine.app.sweep.sweep_tick` every 10 s on a thread of its own) and
the store lease that lets one serving process sweep at a time: who holds it, and freeing it when its holder on this
host died mid-tick. :mod:`engine.orchestration.up` and every other serving process run one."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from engine import store
from engine.app import App
from engine.app.ports import SweepReport
from engine.app.sweep import LEASE, SWEEP_EVERY, UNLINKED_GRACE, sweep_tick
from engine.errors import one_line

__all__ = ["THOROUGH_EVERY", "SweepTimer", "free_dead_lease", "lease_holder_id"]

logger = logging.getLogger("carepath.serve")

#: Every this many ticks (5 min) the timer also looks at runs still waiting for their time (there may be
#: thousands) and at rungs without a run that are due later.
THOROUGH_EVERY = 30


class SweepTimer:
    """The serving process's sweep timer: a daemon thread calling :func:`sweep_tick` every ``every`` until stopped,
    and every :data:`~engine.app.sweep.UNLINKED_GRACE` while stalled (see :attr:`interval`).

    A tick that fails is logged and the next one tries again: the timer never dies of an outage.
    """

    def __init__(self, app: App, every: float = SWEEP_EVERY.total_seconds()) -> None:
        self.app = app
        self.every = every
        self.holder = lease_holder_id()
        #: The last pass ran here, not as a flow run (Prefect down): due rungs wait only UNLINKED_GRACE until one can.
        self.stalled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="carepath-sweep-timer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def interval(self) -> float:
        """Seconds to the next tick. While stalled (Prefect down) the passes are this process's alone to fire rungs,
        each :data:`UNLINKED_GRACE` after due: ticking every 10 s made them fire in waves every ~15 s (10 s and the
        pass), 3-30 s late, during a Prefect outage at 10,000 episodes. A tick that finds nothing costs a few
        indexed reads."""
        return min(self.every, UNLINKED_GRACE.total_seconds()) if self.stalled else self.every

    def tick(self, count: int) -> SweepReport | None:
        """One tick; every :data:`THOROUGH_EVERY` ticks a thorough one (see :func:`engine.app.sweep.has_work`)."""
        try:
            free_dead_lease(self.app)
            report = sweep_tick(self.app, self.holder, thorough=count % THOROUGH_EVERY == 0, stalled=self.stalled)
        except Exception as exc:  # an outage or a bug: one line, and the next tick tries again
            logger.warning("sweep tick failed: %s: %s", type(exc).__name__, one_line(str(exc), 200))
            return None
        if report is not None:
            self.stalled = report.in_process
        return report

    def _loop(self) -> None:
        count = 1  # tick 0 is the restart's catch-up, run before serving
        while not self._stop.wait(self.interval):
            self.tick(count)
            count += 1


def lease_holder_id() -> str:
    """``host:pid:token``: who holds the sweep lease, so a restart on the same host can tell it died."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def free_dead_lease(app: App) -> bool:
    """Give back the sweep lease if its holder was a process of this host that is gone (killed mid-tick), rather
    than let the restart wait for the lease to expire; True if it was freed."""
    holder = store.lease_holder(app.engine, LEASE, app.clock.wall_time(app.clock.now()))
    host, _, rest = (holder or "").partition(":")
    pid = rest.partition(":")[0]
    if not holder or host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
        return False
    except ProcessLookupError:
        store.release_lease(app.engine, LEASE, holder)
        return True
    except PermissionError:  # alive, another user's
        return False
