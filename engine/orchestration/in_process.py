"""A serving process runs the deadline runs that come due itself, in its own warm interpreter.

Prefect's runner starts every deployment run in a new Python process, which imports Prefect and Carepath before it
does anything: about 2 s of CPU on an idle machine, and up to a minute or two of wall time at a load of 20 (bench:
``deadline_run_start_lag_s``, p50 49 s at 1,000 episodes). A deadline run's work is small (fire the minute's due
rungs), so under load escalations waited for their run's process (issue 12). Each serving process therefore claims
the deadline runs due within :data:`LEAD` seconds and runs each one here, as the same flow run (its id, name,
parameters, logs and artifact): an operator sees the same runs, without a process each.

- The claim is Prefect's (:func:`~engine.orchestration.prefect_api.claim_due_runs`: one ``Pending`` proposal wins),
  so with several serving processes each run is run once, by whichever claimed it.
- The deadline deployments are registered but not served by Prefect's runner (``up`` serves the others): with
  both polling, the runner won about a third of the runs made when their minute had already begun, and started a
  process for each. A run nobody claims (every serving process down or stalled) goes Late, as before; the sweep
  fires its rungs 20 s after they are due, and the run, once claimed, finds them fired.
- A claimed run waits in its slot until its time; one cancelled meanwhile is ended ``Met`` (its deadlines were met)
  or ``Cancelled`` (:func:`~engine.orchestration.prefect_api.run_claimed`).
- A serving process that dies takes its runs with it: the sweep fires their due rungs (each rung escalates once
  whoever fires it) and the reconciler ends the runs, as for a run whose own process died.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from engine.app.context import App, bound
from engine.errors import one_line
from engine.language.model import PathwaySpec
from engine.orchestration import prefect_api as prefect_ops
from engine.orchestration.adapters import prefect_api
from engine.orchestration.prefect_api import DEFAULT_PREFETCH_SECONDS

__all__ = ["AT_ONCE", "EVERY", "LEAD", "STOP_GRACE", "InProcessDeadlines", "start_in_process_deadlines"]

logger = logging.getLogger("carepath.deadlines")

#: How far ahead a due run is claimed (seconds): as far as Prefect's runner prefetches, and a margin for a slow tick.
LEAD = DEFAULT_PREFETCH_SECONDS + 5.0
#: How long a stopping serving process waits for the deadline runs under way (seconds).
STOP_GRACE = 10.0
#: How often the serving process looks for due runs (seconds).
EVERY = 1.0
#: Deadline runs one serving process holds at once: each waits in its slot from its claim (LEAD early) to its minute's
#: last rung, so a slot per pathway is not enough; firing is bounded inside each run (``FIRING_AT_ONCE``).
AT_ONCE = 32


class InProcessDeadlines:
    """Claims due runs of ``flows``' deployments (``flow/deployment`` name -> the flow each runs) every ``every``
    seconds and runs each on a thread of its own bound to ``app`` (at most ``at_once``), until :meth:`stop`."""

    def __init__(
        self,
        app: App,
        flows: Mapping[str, Any],
        *,
        lead: float = LEAD,
        every: float = EVERY,
        at_once: int = AT_ONCE,
    ) -> None:
        self.app = app
        self.flows = dict(flows)
        self.lead = lead
        self.every = every
        self.at_once = at_once
        self._ids: dict[str, UUID] = {}
        self._busy = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._runs: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._loop, name="carepath-deadline-claims", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Claim nothing more, and give the runs under way ``grace`` seconds to finish. One still running then (a
        run waits up to two minutes for its next rung) ends with the process, as in a crash: its run is ended by
        the next serving process's start or the reconciler, and its rungs are fired by the sweep."""
        self._stop.set()
        self._thread.join(timeout=30)
        deadline = time.monotonic() + grace
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.join(timeout=max(0.0, deadline - time.monotonic()))

    def tick(self) -> int:
        """Claim what is due and free slots allow; returns how many runs were claimed."""
        with self._lock:
            free = self.at_once - self._busy
        if free < 1:
            return 0
        with prefect_api(self.app.settings):
            if len(self._ids) < len(self.flows):  # registered by the runner once serving starts
                self._ids = prefect_ops.run_sync(prefect_ops.deployment_ids(self.flows))
            by_id = {deployment_id: self.flows[name] for name, deployment_id in self._ids.items()}
            before = datetime.now(UTC) + timedelta(seconds=self.lead)
            claimed = prefect_ops.run_sync(prefect_ops.claim_due_runs(list(by_id), before, free))
        for run in claimed:
            context = contextvars.copy_context()  # the serving process's Prefect settings
            thread = threading.Thread(
                target=context.run, args=(self._run, by_id[run.deployment_id], run), name=f"carepath-run-{run.id}"
            )
            thread.daemon = True  # the process's exit does not wait for a run waiting for its next rung
            with self._lock:
                self._busy += 1
                self._runs = [t for t in self._runs if t.is_alive()] + [thread]
            thread.start()
        return len(claimed)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.tick()
            except Exception as exc:  # an outage: the runner and the sweep still cover, and the next tick retries
                logger.warning("claiming due deadline runs failed: %s: %s", type(exc).__name__, one_line(str(exc)))

    def _run(self, flow: Any, run: Any) -> None:
        try:
            with bound(self.app), prefect_api(self.app.settings):
                ended = prefect_ops.run_sync(prefect_ops.run_claimed(flow, run))
            logger.debug("deadline run %s ended %s", run.id, ended)
        except Exception as exc:  # its rungs are the sweep's now
            logger.warning("deadline run %s failed here: %s: %s", run.id, type(exc).__name__, one_line(str(exc)))
        finally:
            with self._lock:
                self._busy -= 1


def start_in_process_deadlines(app: App, specs: Iterable[PathwaySpec]) -> InProcessDeadlines:
    """Start running the pathways' due deadline runs in this serving process; stop it with :meth:`stop`."""
    from engine.orchestration.adapters import deployment_name
    from engine.orchestration.flows import flow_for

    flows = {deployment_name(s.id, "deadline"): flow_for(s.id, s.version, "deadline", s.title) for s in specs}
    warm = InProcessDeadlines(app, flows)
    warm.start()
    return warm
