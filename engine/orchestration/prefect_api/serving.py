"""Serving deployments: wait for them, requeue runs a dead process left, the crashed-run automation, health."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

import httpx

from engine.clock import utc
from engine.errors import OrchestrationError
from engine.orchestration.prefect_api.calls import (
    CALL_DEADLINE,
    _client,
    _deployment,
    _describe,
)
from engine.orchestration.prefect_api.operators import CARE_STATE_NAMES

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

__all__ = [
    "DEFAULT_PREFETCH_SECONDS",
    "DEFAULT_QUERY_SECONDS",
    "SERVER_LOST_SECONDS",
    "ZOMBIE_AUTOMATION",
    "aserve_deployments",
    "ensure_zombie_automation",
    "requeue_orphaned_runs",
    "serve_deployments",
    "wait_for_deployments",
]


#: How often a serving process asks the server for due runs (Prefect's default is 10 s).
DEFAULT_QUERY_SECONDS = 2.0
#: How far ahead it picks runs up; the server holds each started run until its time, so this only hides the
#: process start. It must exceed the query interval (+30 % jitter) plus the process start under load.
DEFAULT_PREFETCH_SECONDS = 15.0
#: A server that fails its health check this long in a row is gone: serving stops so it can be restarted or
#: waited for. (A busy SQLite server was seen not to answer for 15 s; a dead local server is noticed at once.)
SERVER_LOST_SECONDS = 60.0


async def wait_for_deployments(
    names: Iterable[str], timeout: float, *, polled_since: datetime | None = None
) -> dict[str, UUID]:
    """Wait until every ``flow/deployment`` exists (and, with ``polled_since``, a process has polled for it
    since then, i.e. it is being served); return their ids. Raises OrchestrationError after ``timeout`` s."""
    wanted = list(names)
    found: dict[str, UUID] = {}
    deadline = time.monotonic() + timeout
    async with _client("cannot read deployments", deadline=timeout + CALL_DEADLINE) as client:
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
    ``Crashed``. The server's own state events count as signs of life too, and start the watch: a process killed
    while its run was Pending, or Running before its first heartbeat left the process (heartbeats are sent in the
    background), leaves a run that never heartbeats; without them such a run stayed non-final for good (seen
    with event commands killed mid-burst). A prefetched deadline run waits Pending for at most the prefetch
    (15 s) plus its process start, well inside three intervals. It applies to every flow run on the server.
    A run ending in one of Carepath's named states emits ``prefect.flow-run.<name>`` (not ``...Completed``), so
    those names are endings too (:data:`~engine.orchestration.prefect_api.operators.CARE_STATE_NAMES`).
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
            after={"prefect.flow-run.heartbeat", "prefect.flow-run.Pending", "prefect.flow-run.Running"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Running",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
                *(f"prefect.flow-run.{name}" for name in CARE_STATE_NAMES),  # an ending too: the event is named
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
    registered: Iterable[RunnerDeployment] = (),
) -> None:
    """Register and serve ``deployments`` from this process until it is stopped (see :func:`serve_deployments`)."""
    from prefect import aserve

    others = list(registered)
    for deployment in others:  # registered only: this process runs their runs itself (see in_process)
        await deployment.aapply()
    if requeue_orphans:
        names = [d.full_name for d in (*deployments, *others)]
        await requeue_orphaned_runs(names, running_before=datetime.now(UTC))
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
    registered: Iterable[RunnerDeployment] = (),
) -> None:
    """Register ``deployments`` and run their scheduled runs, each in a child process, until stopped; register
    ``registered`` too, whose runs something else in this process runs (they are requeued with the others).

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
        registered=registered,
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how an operator stops serving: no traceback
        asyncio.run(serving)
