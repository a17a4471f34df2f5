"""The ports' Prefect implementations: timers are scheduled deployment runs, artifacts are Prefect artifacts, and
a coordinator's request runs as an in-process flow run operators can watch.

- :class:`PrefectScheduler`: pending rungs become runs of their pathway's deadline deployment, one per pathway and
  wall minute (scheduling twice joins the same run); cancelling uses ``Cancelling`` (see
  :func:`engine.orchestration.prefect_api.cancel_flow_run`); the runs not yet final are the runs tagged ``deadline``.
- :class:`PrefectPublisher`: Markdown and table artifacts, linked to the current run when there is one.
- :class:`PrefectDispatcher`: runs the pathway's enroll or event flow, or a sweep pass, in this process; in a
  long-lived process (the API) it follows requests up after they are answered, on a thread of its own, several
  at once in one ``carepath-requests`` run when they arrive faster than runs finish.

Every Prefect call runs inside :func:`prefect_api`, which points Prefect at the configured server for that call
only (no environment variable is written). What reaches Prefect: episode ids, rung ids, inbound event ids,
pathway, stage and role ids, and the pathway's own work titles.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from engine.app.context import bound_app
from engine.app.deadlines import deadline_slot
from engine.app.episodes import acknowledgement_request
from engine.app.followup import schedule_timers
from engine.app.ports import Artifact, RunState, RunView, SweepReport, Timer
from engine.app.settings import Settings
from engine.clock import utc
from engine.errors import CarepathError, OrchestrationError, PartlyScheduled
from engine.orchestration import prefect_api as prefect_ops
from engine.orchestration.drain import Drain
from engine.orchestration.names import SWEEP_TAG, deadline_batch_title


class FlowLookup(Protocol):
    """The flows a dispatcher runs in-process (:data:`engine.orchestration.flows.FLOWS`); given to it, so that
    this module never imports the flows (which need an App, which holds this dispatcher)."""

    def for_pathway(self, pathway_id: str, version: int, kind: str) -> Any:
        """The pathway's flow of ``kind`` (``enroll``, ``event``, ``deadline``)."""
        ...

    def sweep(self) -> Any:
        """The ``carepath-sweep`` flow."""
        ...

    def requests(self) -> Any:
        """The ``carepath-requests`` flow (several requests' follow-ups in one run)."""
        ...


__all__ = [
    "FlowLookup",
    "PrefectDispatcher",
    "PrefectPublisher",
    "PrefectScheduler",
    "deployment_name",
    "prefect_api",
    "require_api",
]

logger = logging.getLogger("carepath.dispatch")

#: Prefect API calls in flight at once when (un)scheduling (a SQLite Prefect server answers 503 beyond that).
CONCURRENCY = 3
#: The tag every deadline run carries (the timer's tags and its deployment's).
DEADLINE_TAG = "deadline"
_STATES: dict[str, RunState] = {
    "SCHEDULED": "scheduled",
    "PENDING": "pending",
    "RUNNING": "running",
    "CANCELLING": "cancelling",
}


def deployment_name(pathway_id: str, kind: str) -> str:
    """``reentry``, ``deadline`` -> ``reentry-deadline/reentry``."""
    return f"{pathway_id}-{kind}/{pathway_id}"


def known_api(settings: Settings) -> str:
    """The configured or recorded Prefect API (whether it answers or not), or a one-line error saying how to start
    one."""
    url = settings.api_url()
    if not url:
        raise OrchestrationError("no Prefect server is known: start one with `carepath up` (or set PREFECT_API_URL)")
    return url


def require_api(settings: Settings) -> str:
    """The reachable Prefect API, or a one-line error saying how to start one."""
    from engine.orchestration.server import api_reachable

    url = known_api(settings)
    if not api_reachable(url):
        raise OrchestrationError(f"the Prefect server at {url} is not answering: is `carepath up` running?")
    return url


_SETTINGS: dict[tuple[int, str], Any] = {}
T = TypeVar("T")


@contextlib.contextmanager
def prefect_api(settings: Settings) -> Iterator[str]:
    """Point Prefect at the configured server for the calls made inside (threads started inside inherit it)."""
    url = known_api(settings)
    import prefect.context
    from prefect.settings import PREFECT_API_URL

    current = prefect.context.get_settings_context()
    key = (id(current.settings), url)
    if key not in _SETTINGS:  # building Prefect's settings costs 0.3-1.5 s: once per process and server
        _SETTINGS[key] = current.settings.copy_with_update(updates={PREFECT_API_URL: url})
    with prefect.context.SettingsContext(profile=current.profile, settings=_SETTINGS[key]):
        yield url


async def _batch(calls: Callable[[], list[Coroutine[Any, Any, T]]]) -> list[T]:
    """Run a batch of Prefect calls over one client, at most :data:`CONCURRENCY` at a time."""
    async with prefect_ops.shared_client():
        return await prefect_ops.gather_limited(calls(), CONCURRENCY)


class PrefectScheduler:
    """Durable timers as scheduled deployment runs (the Scheduler port), one run per pathway and wall minute.

    Every rung of a pathway due in the same wall minute joins one run of the pathway's deadline deployment, made at
    the minute's start (keyed by pathway and minute; a run already under way is not joined, see
    :func:`engine.orchestration.prefect_api.schedule_shared_run`): the run fires each rung as it comes due
    (:mod:`engine.app.deadlines`), so a burst of deadlines costs one process start per pathway and minute, not
    one per rung. Operators see the run named for its pathway and minute, and the rungs listed in its artifact.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def schedule(self, timers: Sequence[Timer]) -> dict[str, str]:
        batches: dict[tuple[str, datetime], list[Timer]] = {}
        for timer in timers:
            batches.setdefault((timer.pathway_id, deadline_slot(timer.at)), []).append(timer)

        async def one(pathway_id: str, slot: datetime, members: list[Timer]) -> list[tuple[str, str]] | CarepathError:
            try:
                run_id = await prefect_ops.schedule_shared_run(
                    deployment_name(pathway_id, "deadline"),
                    parameters={"pathway_id": pathway_id, "minute": f"{slot:%Y-%m-%d %H:%M} UTC"},
                    at=slot,
                    idempotency_key=f"{pathway_id}@{slot:%Y%m%dT%H%MZ}",
                    flow_run_name=deadline_batch_title(pathway_id, slot),
                    tags=[f"pathway:{pathway_id}", DEADLINE_TAG],
                )
            except CarepathError as exc:  # the other minutes' runs stand: they are kept, not made again
                return exc
            return [(timer.rung_id, str(run_id)) for timer in members]

        with prefect_api(self.settings):
            done = prefect_ops.run_sync(_batch(lambda: [one(p, slot, m) for (p, slot), m in batches.items()]))
        failed = [result for result in done if isinstance(result, CarepathError)]
        scheduled = dict(pair for pairs in done if not isinstance(pairs, CarepathError) for pair in pairs)
        if failed:
            raise PartlyScheduled(f"{len(failed)} of {len(done)} run(s) not scheduled: {failed[0]}", scheduled)
        return scheduled

    def cancel(self, run_ids: Sequence[str], *, met: bool = False) -> int:
        with prefect_api(self.settings):
            done = prefect_ops.run_sync(_batch(lambda: [prefect_ops.cancel_flow_run(r, met=met) for r in run_ids]))
        return sum(done)

    def unfinished(self, *, include_scheduled: bool, limit: int) -> list[RunView]:
        states = [s for s in _STATES if include_scheduled or s != "SCHEDULED"]
        with prefect_api(self.settings):
            runs = prefect_ops.run_sync(prefect_ops.list_runs(DEADLINE_TAG, states, limit))
        return [
            RunView(
                run_id=str(run.run_id),
                state=_STATES[run.state_type],
                since=utc(run.since or run.scheduled_time or run.start_time),  # type: ignore[arg-type]
                at=utc(run.scheduled_time) if run.scheduled_time else None,
            )
            for run in runs
            if run.state_type in _STATES and (run.since or run.scheduled_time)
        ]

    def requeue(self, run_ids: Sequence[str]) -> int:
        with prefect_api(self.settings):
            return prefect_ops.run_sync(prefect_ops.requeue_flow_runs(run_ids))

    def end(self, run_ids: Sequence[str]) -> int:
        with prefect_api(self.settings):
            return prefect_ops.run_sync(prefect_ops.end_flow_runs(run_ids))


class PrefectPublisher:
    """Prefect artifacts (the Publisher port)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def publish(self, artifacts: Sequence[Artifact]) -> None:
        versions = [(a.key, a.content, a.description) for a in artifacts]
        with prefect_api(self.settings):
            failed = prefect_ops.run_sync(prefect_ops.publish_artifacts(versions, CONCURRENCY))
        if failed:
            raise OrchestrationError(f"{len(failed)} of {len(versions)} artifact(s) not published: {failed[0]}")


#: A deferring dispatcher follows up at most this many requests in one run.
MAX_REQUESTS = 50
#: A deferring dispatcher schedules the new timers of at most this many episodes in one go.
MAX_AHEAD = 100


class PrefectDispatcher:
    """A coordinator's request as an in-process flow run of the pathway's flow (the Dispatcher port).

    ``deferred`` (a long-lived process: the API server): :meth:`enroll` and :meth:`event` return at once (the
    request was answered from the store) and two queues of this dispatcher's own (:class:`Drain`) do the rest:

    - the follow-ups, in order, one run per request, or one ``carepath-requests`` run for all that queued while the
      previous run was busy, so a burst costs a run per batch, not a run per request;
    - ahead of them, the timers: the new rungs of each episode a request changed get their deadline runs within
      a second or two of the answer, however far behind the follow-ups are (a rung due minutes after the event
      that opened it was once scheduled after it was due, behind a minute of queued follow-ups). The follow-up
      schedules what this left (it uses the same :func:`~engine.app.followup.schedule_timers`).

    A process that dies with requests queued leaves their follow-up to the sweep, which finds the same work in the
    store. :meth:`flush` waits for both queues.
    """

    def __init__(self, settings: Settings, flow_for: FlowLookup | None, *, deferred: bool = False) -> None:
        self.settings = settings
        self.flow_for = flow_for
        self.deferred = deferred
        self._follow_ups: Drain[tuple[str, int, str, dict[str, Any]]] = Drain(
            "carepath-follow-ups", self._follow_up, MAX_REQUESTS
        )
        self._timers: Drain[str] = Drain("carepath-timers-ahead", _schedule_ahead, MAX_AHEAD)

    def ready(self) -> None:
        """A command runs its follow-up in its own run: the Prefect server must answer. A deferring dispatcher
        answers from the store whether it answers or not: follow-ups Prefect cannot take are the sweep's, which the
        serving process runs without Prefect too (coordinators could record nothing for 10 minutes of a Prefect
        outage at 10,000 episodes while rungs kept escalating); it needs only a server to be known."""
        if self.flow_for is None:
            raise OrchestrationError("this command does not run flows (no flows were given to its dispatcher)")
        if self.deferred:
            known_api(self.settings)
            return
        require_api(self.settings)

    def enroll(self, pathway_id: str, version: int, episode_id: str) -> None:
        self._submit(pathway_id, version, "enroll", {"episode_id": episode_id})

    def event(self, pathway_id: str, version: int, episode_id: str, event: str, inbound_id: str) -> None:
        self._submit(pathway_id, version, "event", {"episode_id": episode_id, "event": event, "inbound_id": inbound_id})

    def acknowledged(self, episode_id: str, escalation_id: int, run_ids: list[str]) -> None:
        """Release the stopped rungs' runs and republish, in a ``carepath-requests`` run (the pathway has no flow of
        its own for it); deferred like the others."""
        request = acknowledgement_request(episode_id, escalation_id, run_ids)
        self._submit("", 0, request.pop("kind"), request)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every deferred follow-up (and timer) is done (or ``timeout`` seconds); True when none is left."""
        end = None if timeout is None else time.monotonic() + timeout
        for drain in (self._timers, self._follow_ups):
            if not drain.flush(None if end is None else max(0.0, end - time.monotonic())):
                return False
        return True

    def sweep(self) -> SweepReport:
        """A sweep pass as a ``carepath-sweep`` flow run named for what it did; raises if it could not run."""
        if self.flow_for is None:
            raise OrchestrationError("this process does not run flows (no flows were given to its dispatcher)")
        require_api(self.settings)
        sweep_flow = self.flow_for.sweep()
        with prefect_api(self.settings):

            async def run() -> dict[str, Any]:
                from prefect import tags

                with tags(SWEEP_TAG):  # operators hide sweep passes with a tag filter
                    state = await sweep_flow(return_state=True)
                if not state.is_completed():
                    raise OrchestrationError(f"the sweep run ended {state.name}: {state.message}")
                return dict(await state.aresult())

            return SweepReport(**prefect_ops.run_sync(prefect_ops.with_run_client(run())))

    def _submit(self, pathway_id: str, version: int, kind: str, parameters: dict[str, Any]) -> None:
        if not self.deferred:
            self._follow_up([(pathway_id, version, kind, parameters)])
            return
        # the caller's context goes with the request: the App it bound (engine.app.context.bound) does the work
        if kind != "acknowledge":  # an acknowledgement opens no rung
            self._timers.put(parameters["episode_id"])
        self._follow_ups.put((pathway_id, version, kind, parameters))

    def _follow_up(self, work: list[tuple[str, int, str, dict[str, Any]]]) -> None:
        """One request as its pathway's flow run; several, or an acknowledgement, as one ``carepath-requests``."""
        if len(work) == 1 and work[0][2] != "acknowledge":
            pathway_id, version, kind, parameters = work[0]
            self._run(pathway_id, version, kind, **parameters)
            return
        if self.flow_for is None:
            raise OrchestrationError("this process does not run flows (no flows were given to its dispatcher)")
        require_api(self.settings)
        requests = [{"kind": kind, **parameters} for _pathway, _version, kind, parameters in work]
        with prefect_api(self.settings):
            prefect_ops.run_sync(
                prefect_ops.with_run_client(self.flow_for.requests()(requests=requests, return_state=True))
            )

    def _run(self, pathway_id: str, version: int, kind: str, **parameters: Any) -> None:
        require_api(self.settings)
        assert self.flow_for is not None  # ready() said so
        with prefect_api(self.settings):
            flow = self.flow_for.for_pathway(pathway_id, version, kind)
            prefect_ops.run_sync(prefect_ops.with_run_client(flow(**parameters, return_state=True)))


def _schedule_ahead(episodes: list[str]) -> None:
    """Give these episodes' new rungs their runs now, ahead of their follow-ups (see :class:`PrefectDispatcher`)."""
    app = bound_app()
    if app is None:  # handed over outside any App (none in Carepath): the follow-up schedules
        return
    wanted = sorted(set(episodes))
    try:
        require_api(app.settings)  # down: fail at once, not after the client's retries
        schedule_timers(app, wanted)
    except CarepathError as exc:  # Prefect down: the follow-up, or else the sweep, schedules them
        logger.warning("timers of %d episode(s) not scheduled ahead: %s", len(wanted), exc)
