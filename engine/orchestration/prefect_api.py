"""The few Prefect calls the orchestration layer makes: durable timers, their cancellation, artifacts, serving.

Why these and not Prefect's API directly: every call here takes opaque ids only (episode, pathway, stage ids;
never a name or a date of birth), turns every Prefect or HTTP failure into a one-line
:class:`~engine.errors.OrchestrationError`, and encodes what was measured about Prefect 3.8.8 (see
``readme-parts/prefect.md``):

- a deadline is a deployment run created in state ``Scheduled`` at its due time, with an idempotency key; the
  server keeps it, so it survives the restart of every process;
- the server never lets a run start early (it answers ``WAIT`` until the scheduled time), so the serving
  process may prefetch generously to hide its ~2-10 s process start;
- a run a serving process prefetched (state ``Pending``) is orphaned for ever if that process dies before the
  run starts: :func:`requeue_orphaned_runs` puts such runs back, and :func:`serve_deployments` calls it;
  :func:`list_runs`, :func:`requeue_flow_runs` and :func:`end_flow_runs` let the sweep's reconciler do the same
  at any time, for runs stuck past a bound.

All functions are coroutines; :func:`run_sync` runs one from synchronous code (a CLI command, a sync flow).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import httpx

from engine.clock import utc
from engine.errors import OrchestrationError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.deployments.runner import RunnerDeployment

__all__ = [
    "DEFAULT_PREFETCH_SECONDS",
    "DEFAULT_QUERY_SECONDS",
    "SERVER_LOST_SECONDS",
    "ZOMBIE_AUTOMATION",
    "RunStatus",
    "aserve_deployments",
    "cancel_auto_scheduled_runs",
    "cancel_flow_run",
    "end_flow_runs",
    "ensure_zombie_automation",
    "gather_limited",
    "get_run_state",
    "list_runs",
    "publish_markdown_artifact",
    "publish_table_artifact",
    "rename_current_flow_run",
    "requeue_flow_runs",
    "requeue_orphaned_runs",
    "reschedule_flow_run",
    "run_sync",
    "schedule_deployment_run",
    "serve_deployments",
    "shared_client",
    "wait_for_deployments",
]

T = TypeVar("T")

#: How often a serving process asks the server for due runs (Prefect's default is 10 s).
DEFAULT_QUERY_SECONDS = 2.0
#: How far ahead it picks runs up; the server holds each started run until its time, so this only hides the
#: process start. It must exceed the query interval (+30 % jitter) plus the process start under load.
DEFAULT_PREFETCH_SECONDS = 15.0

_ARTIFACT_KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_NOT_STARTED = frozenset({"SCHEDULED", "PENDING"})
_PAGE = 200  # the server's largest page of flow runs
#: A server that fails its health check this long in a row is gone: serving stops so it can be restarted or
#: waited for. (A busy SQLite server was seen not to answer for 15 s; a dead local server is noticed at once.)
SERVER_LOST_SECONDS = 60.0


@dataclass(frozen=True)
class RunStatus:
    """Where a flow run stands; ``state_type`` is Prefect's (``SCHEDULED``, ``RUNNING``, ...), ``state_name``
    the finer name shown in the UI (``Late``, ``Submitting``, ...)."""

    run_id: UUID
    name: str
    state_type: str
    state_name: str
    scheduled_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    #: When the run entered its current state.
    since: datetime | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        """True once the run has left Scheduled/Pending (running, finished, cancelled, paused...)."""
        return self.state_type not in _NOT_STARTED

    @property
    def final(self) -> bool:
        """True when the run can no longer change (completed, failed, cancelled, crashed)."""
        return self.state_type in {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def run_sync(awaitable: Coroutine[Any, Any, T]) -> T:
    """Run one of these coroutines from synchronous code, even when an event loop is running in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(awaitable)
    context = contextvars.copy_context()  # keeps Prefect's settings context (e.g. a temporary API URL)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, asyncio.run, awaitable).result()


async def gather_limited(awaitables: Iterable[Coroutine[Any, Any, T]], limit: int) -> list[T]:
    """Await all, at most ``limit`` at a time, in order (a SQLite Prefect server answers 503 to more)."""
    gate = asyncio.Semaphore(limit)

    async def one(awaitable: Coroutine[Any, Any, T]) -> T:
        async with gate:
            return await awaitable

    return list(await asyncio.gather(*(one(a) for a in awaitables)))


_DEPLOYMENT_IDS: dict[tuple[str, str], UUID] = {}


async def schedule_deployment_run(
    deployment_name: str,
    parameters: Mapping[str, Any],
    at: datetime,
    idempotency_key: str,
    flow_run_name: str | None = None,
    tags: Iterable[str] = (),
) -> UUID:
    """Create a run of ``flow/deployment`` that starts at ``at``; the same key returns the existing run.

    The key is unique per *flow* on the server (not per deployment), and a key once used keeps returning its
    run even after that run was cancelled: give every deadline instance its own key. Parameters are checked
    against the deployment's schema by the server.
    """
    from prefect.states import Scheduled

    async with _client(f"cannot schedule a run of {deployment_name!r}") as client:
        key = (str(client.api_url), deployment_name)
        if key not in _DEPLOYMENT_IDS:  # a deployment keeps its id when re-served: look it up once per process
            _DEPLOYMENT_IDS[key] = (await _deployment(client, deployment_name)).id
        run = await client.create_flow_run_from_deployment(
            _DEPLOYMENT_IDS[key],
            parameters=dict(parameters),
            state=Scheduled(scheduled_time=utc(at)),
            name=flow_run_name,
            tags=list(tags),
            idempotency_key=idempotency_key,
        )
        return run.id


async def cancel_flow_run(run_id: UUID | str) -> bool:
    """Cancel a run that has not started (Scheduled, Late, Pending); True if it is cancelled or being cancelled.

    False if it has started or finished, or does not exist. Why ``Cancelling`` and not ``Cancelled``: a Pending
    run was prefetched by a serving process whose child waits for the run's time, and the server lets a run go
    from Cancelled to Running (that is how manual reruns work), so setting Cancelled does not stop it. A
    Cancelling run is killed by its serving process, which then marks it Cancelled; a Scheduled one has no
    process and the server makes it Cancelled at once. Left race: a run due right now may start between the
    read and the cancel; flows re-check the store before acting.
    """
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelling

    async with _client(f"cannot cancel flow run {run_id}") as client:
        run = await _read_run(client, run_id)
        if run is None or run.state is None:
            return False
        if run.state.type in {StateType.CANCELLED, StateType.CANCELLING}:
            return True
        if run.state.type.value not in _NOT_STARTED:
            return False
        result = await client.set_flow_run_state(run.id, Cancelling(message="cancelled by Carepath"))
        return result.state is not None and result.state.type in {StateType.CANCELLED, StateType.CANCELLING}


async def reschedule_flow_run(run_id: UUID | str, at: datetime) -> bool:
    """Move a run that is still Scheduled (or Late) to ``at``; False if it has been picked up, ended or is gone.

    A Pending run is not moved: its process already waits for the old time. Cancel it and schedule a new run
    with a new idempotency key instead.
    """
    from prefect.client.schemas.objects import StateType
    from prefect.states import Scheduled

    async with _client(f"cannot reschedule flow run {run_id}") as client:
        run = await _read_run(client, run_id)
        if run is None or run.state is None or run.state.type is not StateType.SCHEDULED:
            return False
        result = await client.set_flow_run_state(run_id, Scheduled(scheduled_time=utc(at)), force=True)
        return result.state is not None and result.state.type is StateType.SCHEDULED


async def rename_current_flow_run(name: str) -> bool:
    """Rename the flow run this code runs in (names say what a run did); False outside a flow run."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return False
    async with _client(f"cannot rename flow run {context.flow_run.id}") as client:
        await client.update_flow_run(context.flow_run.id, name=name)
        return True


async def get_run_state(run_id: UUID | str) -> RunStatus | None:
    """The run's current state, or None if the server has no such run."""
    async with _client(f"cannot read flow run {run_id}") as client:
        run = await _read_run(client, run_id)
        return None if run is None else _status(run)


def _status(run: Any) -> RunStatus:
    state = run.state
    return RunStatus(
        run_id=run.id,
        name=run.name,
        state_type=state.type.value if state else "UNKNOWN",
        state_name=(state.name or state.type.value) if state else "Unknown",
        scheduled_time=(state.state_details.scheduled_time if state else None) or run.expected_start_time,
        start_time=run.start_time,
        end_time=run.end_time,
        since=utc(state.timestamp) if state and state.timestamp else None,
        parameters=dict(run.parameters or {}),
    )


async def list_runs(tag: str, state_types: Iterable[str], limit: int = 1000) -> list[RunStatus]:
    """Runs tagged ``tag`` in these state types (``SCHEDULED``, ``PENDING``...), soonest first, at most ``limit``
    (read a page at a time: the server returns at most 200 per request)."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    wanted = FlowRunFilter(
        tags=FlowRunFilterTags(all_=[tag]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(t) for t in state_types])),
    )
    out: list[RunStatus] = []
    async with _client(f"cannot list runs tagged {tag!r}") as client:
        while len(out) < limit:
            size = min(_PAGE, limit - len(out))
            page = await client.read_flow_runs(
                flow_run_filter=wanted, sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=size, offset=len(out)
            )
            out += [_status(run) for run in page]
            if len(page) < size:
                break
    return out


async def requeue_flow_runs(run_ids: Iterable[UUID | str]) -> int:
    """Put runs still ``Pending`` back to ``Scheduled`` at their time (their serving process died); how many."""
    from prefect.client.schemas.objects import StateType
    from prefect.states import Scheduled

    done = 0
    async with _client("cannot requeue runs") as client:
        for run_id in run_ids:
            run = await _read_run(client, run_id)
            if run is None or run.state is None or run.state.type is not StateType.PENDING:
                continue
            due = run.state.state_details.scheduled_time or run.expected_start_time
            await client.set_flow_run_state(run.id, Scheduled(scheduled_time=due), force=True)
            done += 1
    return done


async def end_flow_runs(run_ids: Iterable[UUID | str], reason: str = "its process died") -> int:
    """Make runs whose process is gone final: not started or cancelling ones ``Cancelled``, running ones
    ``Crashed``. Runs already final are left alone. Returns how many were ended."""
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled, Crashed

    done = 0
    async with _client("cannot end runs") as client:
        for run_id in run_ids:
            run = await _read_run(client, run_id)
            if run is None or run.state is None:
                continue
            kind = run.state.type
            if kind is StateType.RUNNING:
                await client.set_flow_run_state(run.id, Crashed(message=reason), force=True)
            elif kind in {StateType.SCHEDULED, StateType.PENDING, StateType.CANCELLING}:
                await client.set_flow_run_state(run.id, Cancelled(message=reason), force=True)
            else:
                continue
            done += 1
    return done


async def cancel_auto_scheduled_runs(deployment_names: Iterable[str]) -> int:
    """Cancel runs of these deployments that their (former) schedule created and that have not started.

    Why: when a deployment loses its schedule, Prefect deletes its *future* auto-scheduled runs but keeps the
    ones already late, which would all start at once (the sweep's interval runs after an outage).
    """
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    async with _client("cannot cancel scheduled runs") as client:
        ids = [d.id for name in deployment_names if (d := await _deployment(client, name, missing_ok=True))]
        if not ids:
            return 0
        waiting = FlowRunFilterStateType(any_=[StateType.SCHEDULED, StateType.PENDING])
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=ids), state=FlowRunFilterState(type=waiting)
            ),
            limit=_PAGE,
        )
        done = 0
        for run in runs:
            if run.auto_scheduled:
                await client.set_flow_run_state(run.id, Cancelled(message="replaced by the sweep timer"), force=True)
                done += 1
        return done


async def publish_markdown_artifact(key: str, markdown: str, description: str | None = None) -> UUID:
    """Publish a new version of the Markdown artifact ``key`` (lowercase letters, digits, dashes).

    Inside a flow or task run the artifact is also linked to that run.
    """
    return await _publish("markdown", key, markdown, description)


async def publish_table_artifact(key: str, rows: Sequence[Mapping[str, Any]], description: str | None = None) -> UUID:
    """Publish a new version of the table artifact ``key``: one row per mapping, columns from the keys."""
    return await _publish("table", key, json.dumps([dict(row) for row in rows], default=str), description)


async def _publish(kind: str, key: str, data: str, description: str | None) -> UUID:
    # Through the client rather than prefect.artifacts: that warns (FutureWarning) outside a flow or task run,
    # and a CLI command publishes outside one.
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.utilities.context import get_task_and_flow_run_ids

    if not _ARTIFACT_KEY.match(key):
        raise OrchestrationError(f"artifact key {key!r} must be lowercase letters, digits and single dashes")
    task_run_id, flow_run_id = get_task_and_flow_run_ids()
    request = ArtifactCreate(
        type=kind, key=key, data=data, description=description, task_run_id=task_run_id, flow_run_id=flow_run_id
    )
    async with _client(f"cannot publish artifact {key!r}") as client:
        return (await client.create_artifact(artifact=request)).id


async def wait_for_deployments(
    names: Iterable[str], timeout: float, *, polled_since: datetime | None = None
) -> dict[str, UUID]:
    """Wait until every ``flow/deployment`` exists (and, with ``polled_since``, a process has polled for it
    since then, i.e. it is being served); return their ids. Raises OrchestrationError after ``timeout`` s."""
    wanted = list(names)
    found: dict[str, UUID] = {}
    deadline = time.monotonic() + timeout
    async with _client("cannot read deployments") as client:
        while True:
            for name in wanted:
                if name in found:
                    continue
                deployment = await _deployment(client, name, missing_ok=True)
                polled = deployment is not None and (
                    polled_since is None
                    or (deployment.last_polled is not None and deployment.last_polled >= utc(polled_since))
                )
                if deployment is not None and polled:
                    found[name] = deployment.id
            if len(found) == len(wanted):
                return found
            if time.monotonic() >= deadline:
                missing = ", ".join(sorted(set(wanted) - set(found)))
                state = "served" if polled_since is not None else "registered"
                raise OrchestrationError(f"deployments not {state} within {timeout:.0f} s: {missing}")
            await asyncio.sleep(0.25)


async def requeue_orphaned_runs(
    deployment_names: Iterable[str],
    *,
    pending_before: datetime | None = None,
    running_before: datetime | None = None,
) -> list[UUID]:
    """Put runs of these deployments that are stuck in Pending back to Scheduled; return their ids.

    A serving process moves a run to Pending when it picks it up (up to the prefetch window early); if that
    process dies before the run starts, no other process will ever take it. Runs stuck in Cancelling (their
    process died before it could cancel them) are made Cancelled, and with ``running_before`` runs Running since
    before then are made Crashed (the process that ran them is gone). Call this when (re)starting the *only*
    process that serves these deployments; from a periodic sweep, pass ``pending_before`` (wall time) so only
    runs in that state since before then are touched: a live serving process may hold a run Pending for up to
    the prefetch window plus its process start, so leave a margin of a minute or more.
    """
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled, Crashed, Scheduled

    stuck = [StateType.PENDING, StateType.CANCELLING] + ([StateType.RUNNING] if running_before else [])
    async with _client("cannot requeue orphaned runs") as client:
        ids = [d.id for name in deployment_names if (d := await _deployment(client, name, missing_ok=True))]
        if not ids:
            return []
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=ids),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=stuck)),
            )
        )
        requeued: list[UUID] = []
        for run in runs:
            state = run.state
            if state is None:
                continue
            if state.type is StateType.RUNNING:
                if running_before is not None and utc(state.timestamp) < utc(running_before):
                    await client.set_flow_run_state(run.id, Crashed(message="its serving process died"), force=True)
                continue
            if pending_before is not None and utc(state.timestamp) >= utc(pending_before):
                continue
            if state.type is StateType.CANCELLING:
                await client.set_flow_run_state(run.id, Cancelled(message="its serving process died"), force=True)
                continue
            due = state.state_details.scheduled_time or run.expected_start_time
            await client.set_flow_run_state(run.id, Scheduled(scheduled_time=due), force=True)
            requeued.append(run.id)
        return requeued


#: The automation that marks a flow run Crashed when its process stops sending heartbeats (Prefect's documented
#: answer to runs left Running by a process that died: a killed CLI event, a killed serving process's children).
ZOMBIE_AUTOMATION = "carepath: crash flow runs whose process died"


async def ensure_zombie_automation() -> timedelta | None:
    """Create (or update) :data:`ZOMBIE_AUTOMATION`; returns its window, None when heartbeats are off.

    Every flow run sends a heartbeat when it starts and every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (180 by
    default); a run that sent one and then nothing (no heartbeat, no final state) for three intervals is marked
    ``Crashed``. It applies to every flow run on the server.
    """
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification
    from prefect.settings import get_current_settings

    frequency = get_current_settings().flows.heartbeat_frequency
    if not frequency:
        return None
    within = timedelta(seconds=3 * frequency)
    wanted = AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description="A run that stopped sending heartbeats without ending lost its process; Carepath's store "
        "already holds whatever it did.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=within,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message="no heartbeat: its process died")],
    )
    async with _client("cannot set up the crashed-run automation") as client:
        found = await client.read_automations_by_name(ZOMBIE_AUTOMATION)
        if len(found) == 1 and found[0].trigger == wanted.trigger and found[0].enabled:
            return within
        for automation in found:
            await client.delete_automation(automation.id)
        await client.create_automation(wanted)
    return within


async def aserve_deployments(
    *deployments: RunnerDeployment,
    query_seconds: float = DEFAULT_QUERY_SECONDS,
    prefetch_seconds: float = DEFAULT_PREFETCH_SECONDS,
    limit: int | None = None,
    requeue_orphans: bool = True,
    healthy: Callable[[], bool] | None = None,
    gone: Callable[[], bool] | None = None,
) -> None:
    """Register and serve ``deployments`` from this process until it is stopped (see :func:`serve_deployments`)."""
    from prefect import aserve

    if requeue_orphans:
        await requeue_orphaned_runs((d.full_name for d in deployments), running_before=datetime.now(UTC))
    serving = asyncio.ensure_future(
        aserve(
            *deployments,
            pause_on_shutdown=False,
            print_starting_message=False,
            limit=limit,
            query_seconds=query_seconds,
            prefetch_seconds=prefetch_seconds,
        )
    )
    tasks = {serving} | ({asyncio.ensure_future(_until_unhealthy(healthy, gone))} if healthy else set())
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if serving in done:
            serving.result()
            return
    except (httpx.HTTPError, OSError) as exc:
        raise OrchestrationError(f"cannot serve deployments: {_describe(exc)}") from exc
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):  # the runner's own shutdown noise, once the server is gone
            await asyncio.gather(*tasks, return_exceptions=True)
    raise OrchestrationError("the Prefect server stopped answering")


async def _until_unhealthy(healthy: Callable[[], bool], gone: Callable[[], bool] | None, every: float = 2.0) -> None:
    """Return once ``gone()`` (the server's process exited: at once) or once ``healthy()`` has been False for
    :data:`SERVER_LOST_SECONDS` in a row (a server too busy to answer for a while is not lost)."""
    failing_since: float | None = None
    while True:
        await asyncio.sleep(every)
        if gone is not None and gone():
            return
        if await asyncio.to_thread(healthy):
            failing_since = None
        elif failing_since is None:
            failing_since = time.monotonic()
        elif time.monotonic() - failing_since >= SERVER_LOST_SECONDS:
            return


def serve_deployments(
    *deployments: RunnerDeployment,
    query_seconds: float = DEFAULT_QUERY_SECONDS,
    prefetch_seconds: float = DEFAULT_PREFETCH_SECONDS,
    limit: int | None = None,
    requeue_orphans: bool = True,
    healthy: Callable[[], bool] | None = None,
    gone: Callable[[], bool] | None = None,
) -> None:
    """Register ``deployments`` and run their scheduled runs, each in a child process, until stopped.

    ``pause_on_shutdown`` is off: a stopped serving process must not pause anything; its due runs go Late and
    run when serving resumes. With ``requeue_orphans`` (default) this process assumes it is the only one
    serving these deployments and first takes back runs a dead predecessor had picked up (and ends the ones it
    was running). With ``healthy`` (e.g. a health check of the server), serving stops with
    :class:`OrchestrationError` once it has said False for :data:`SERVER_LOST_SECONDS`, or at once when ``gone()``
    (the local server's process exited): Prefect's runner keeps retrying a dead server for minutes, so the caller
    restarts the server or waits for it, then serves again.
    Ctrl-C returns quietly; SIGTERM exits after the children in flight end (prefetched ones wait for their time).
    """
    serving = aserve_deployments(
        *deployments,
        query_seconds=query_seconds,
        prefetch_seconds=prefetch_seconds,
        limit=limit,
        requeue_orphans=requeue_orphans,
        healthy=healthy,
        gone=gone,
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how an operator stops serving: no traceback
        asyncio.run(serving)


# --- helpers -------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _api(what: str) -> AsyncIterator[None]:
    """Turn any Prefect/HTTP failure inside the block into ``OrchestrationError('<what>: <reason>')``."""
    from prefect.exceptions import PrefectException

    _require_api_url(what)
    try:
        yield
    except OrchestrationError:
        raise
    except (PrefectException, httpx.HTTPError, OSError, ValueError, RuntimeError) as exc:
        raise OrchestrationError(f"{what}: {_describe(exc)}") from exc


_SHARED: contextvars.ContextVar[PrefectClient | None] = contextvars.ContextVar("carepath_client", default=None)


@contextlib.asynccontextmanager
async def shared_client() -> AsyncIterator[None]:
    """Every call inside uses one client (one connection pool) instead of opening its own: a batch of timers or
    cancellations costs one client, which on a loaded machine is most of a call's time."""
    from prefect.client.orchestration import get_client

    if _SHARED.get() is not None:
        yield
        return
    async with _api("cannot reach the Prefect server"), get_client() as client:
        token = _SHARED.set(client)
        try:
            yield
        finally:
            _SHARED.reset(token)


@contextlib.asynccontextmanager
async def _client(what: str) -> AsyncIterator[PrefectClient]:
    from prefect.client.orchestration import get_client

    shared = _SHARED.get()
    if shared is not None:
        async with _api(what):
            yield shared
        return
    async with _api(what), get_client() as client:
        yield client


def _require_api_url(what: str) -> None:
    # Without an API URL Prefect would silently start a throwaway in-process server; never what we want.
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise OrchestrationError(f"{what}: PREFECT_API_URL is not set (run `carepath up`, or point it at a server)")


async def _deployment(client: PrefectClient, name: str, *, missing_ok: bool = False) -> Any:
    from prefect.exceptions import ObjectNotFound

    try:
        return await client.read_deployment_by_name(name)
    except ObjectNotFound:
        if missing_ok:
            return None
        raise OrchestrationError(f"no deployment named {name!r} on the Prefect server (is it being served?)") from None


async def _read_run(client: PrefectClient, run_id: UUID | str) -> Any:
    from prefect.exceptions import ObjectNotFound

    try:
        return await client.read_flow_run(UUID(str(run_id)))
    except ObjectNotFound:
        return None
    except ValueError:
        raise OrchestrationError(f"{run_id!r} is not a flow run id") from None


def _describe(exc: BaseException) -> str:
    """One line for a user: the HTTP status and the server's ``detail`` when there is one."""
    if isinstance(exc, httpx.HTTPStatusError):
        try:
            detail = exc.response.json().get("detail", exc.response.text)
        except ValueError:
            detail = exc.response.text
        return f"HTTP {exc.response.status_code}: {_one_line(str(detail))}"
    if isinstance(exc, httpx.ConnectError | httpx.TimeoutException):
        return f"the Prefect server is not reachable ({_one_line(str(exc)) or type(exc).__name__})"
    return _one_line(str(exc)) or type(exc).__name__


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
