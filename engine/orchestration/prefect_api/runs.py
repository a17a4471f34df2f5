"""Flow runs: durable timers (scheduled deployment runs), their cancellation, rescheduling, reading and repair."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from engine.clock import utc
from engine.errors import OrchestrationError
from engine.orchestration.prefect_api.calls import (
    _client,
    _deployment,
    _read_run,
)
from engine.orchestration.prefect_api.operators import MET, MET_MESSAGE

if TYPE_CHECKING:
    from prefect.client.schemas.responses import OrchestrationResult

__all__ = [
    "RunStatus",
    "cancel_auto_scheduled_runs",
    "cancel_flow_run",
    "current_run_id",
    "end_flow_runs",
    "get_run_state",
    "list_runs",
    "rename_current_flow_run",
    "requeue_flow_runs",
    "reschedule_flow_run",
    "schedule_deployment_run",
    "schedule_shared_run",
]


_NOT_STARTED = frozenset({"SCHEDULED", "PENDING"})
_PAGE = 200  # the server's largest page of flow runs


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
    async with _client(f"cannot schedule a run of {deployment_name!r}") as client:
        run = await _create_scheduled(client, deployment_name, parameters, at, idempotency_key, flow_run_name, tags)
        return run.id


#: How many generations of a shared run's key are tried (``key``, ``key.1``, ...) before a key of its own is used.
_SHARED_ATTEMPTS = 8
#: How long this process joins the run it made or joined for a key without asking the server again.
REUSE_FOR = timedelta(seconds=10)
#: ... and never closer than this to the run's time: a run cannot start before it (the server answers WAIT), so a
#: run handed out from memory has not started.
REUSE_UNTIL_BEFORE = timedelta(seconds=5)
#: Per server, deployment and key, what this process last found joinable: the key's generation (where the next look
#: starts), its run, and until when that run may be handed out from memory.
_JOINED: dict[tuple[str, str, str], tuple[int, UUID, datetime]] = {}
_NEVER = datetime.min.replace(tzinfo=UTC)


async def schedule_shared_run(
    deployment_name: str,
    parameters: Mapping[str, Any],
    at: datetime,
    idempotency_key: str,
    flow_run_name: str | None = None,
    tags: Iterable[str] = (),
) -> UUID:
    """A run of ``flow/deployment`` at ``at`` that several callers join by the same key, as long as it has not
    started: a run already running or finished (or being cancelled) may not look at its work again, so the key's
    next generation (``key.1``, ``key.2``...) is used instead, and after a few a key of its own (a minute whose runs
    keep ending early: every rung in it met one after another). A run picked up (``Pending``) is joined: its process
    reads its work from the store when it starts. Always returns a run that had not started.

    The run found is reused from memory for a few seconds (:data:`REUSE_FOR`, and only while its time is ahead):
    every follow-up of a busy minute joins the same run, and on a SQLite server each join was a write transaction
    that collided with the others (503s and their retries, the embedded default's late escalations). A run this
    process cancels is forgotten at once (:func:`cancel_flow_run`); one another process cancelled is refused when a
    rung is linked to it (:func:`engine.store.set_rung_run`), and the rung is scheduled again after that."""
    from prefect.client.schemas.objects import StateType

    async with _client(f"cannot schedule a run of {deployment_name!r}") as client:
        cache = (str(client.api_url), deployment_name, idempotency_key)
        now = datetime.now(UTC)
        first, joined, until = _JOINED.get(cache, (0, None, _NEVER))
        if joined is not None and now < until:
            return joined
        for generation in [*range(first, first + _SHARED_ATTEMPTS), None]:
            key = (
                f"{idempotency_key}.{uuid4().hex[:12]}"
                if generation is None
                else idempotency_key + (f".{generation}" if generation else "")
            )
            run = await _create_scheduled(client, deployment_name, parameters, at, key, flow_run_name, tags)
            if run.state is not None and run.state.type in {StateType.SCHEDULED, StateType.PENDING}:
                if generation is not None:
                    if len(_JOINED) > 10_000:  # minutes long past: start over rather than grow for ever
                        _JOINED.clear()
                    _JOINED[cache] = (generation, run.id, min(now + REUSE_FOR, utc(at) - REUSE_UNTIL_BEFORE))
                break
        return run.id


def _forget(run_id: UUID | str) -> None:
    """Never hand ``run_id`` out from memory again (it is being cancelled); its key's generation is kept."""
    for cache, (generation, joined, _until) in list(_JOINED.items()):
        if str(joined) == str(run_id):
            _JOINED[cache] = (generation, joined, _NEVER)


async def _create_scheduled(
    client: Any,
    deployment_name: str,
    parameters: Mapping[str, Any],
    at: datetime,
    idempotency_key: str,
    flow_run_name: str | None,
    tags: Iterable[str],
) -> Any:
    from prefect.states import Scheduled

    key = (str(client.api_url), deployment_name)
    if key not in _DEPLOYMENT_IDS:  # a deployment keeps its id when re-served: look it up once per process
        _DEPLOYMENT_IDS[key] = (await _deployment(client, deployment_name)).id
    return await client.create_flow_run_from_deployment(
        _DEPLOYMENT_IDS[key],
        parameters=dict(parameters),
        state=Scheduled(scheduled_time=utc(at)),
        name=flow_run_name,
        tags=list(tags),
        idempotency_key=idempotency_key,
    )


async def cancel_flow_run(run_id: UUID | str, *, met: bool = False) -> bool:
    """Cancel a run that has not started (Scheduled, Late, Pending); True if it is cancelled or being cancelled.

    With ``met`` (its deadline was met in time) a run still ``Scheduled`` ends in a Completed-type state named
    ``Met`` instead, which the server accepts (measured): operators see a met deadline as done, not as a grey
    Cancelled. A ``Pending`` one is cancelled even then: the server lets a run go from Completed (like Cancelled)
    to Running, so only ``Cancelling`` stops the process a serving process already started for it.

    False if it has started or finished, or does not exist. Why ``Cancelling`` and not ``Cancelled``: a Pending
    run was prefetched by a serving process whose child waits for the run's time, and the server lets a run go
    from Cancelled to Running (that is how manual reruns work), so setting Cancelled does not stop it. A
    Cancelling run is killed by its serving process, which then marks it Cancelled; a Scheduled one has no
    process and the server makes it Cancelled at once. Left race: a run due right now may start between the
    read and the cancel; flows re-check the store before acting.
    """
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelling, Completed

    _forget(run_id)
    async with _client(f"cannot cancel flow run {run_id}") as client:
        run = await _read_run(client, run_id)
        if run is None or run.state is None:
            return False
        if run.state.type in {StateType.CANCELLED, StateType.CANCELLING}:
            return True
        if run.state.type.value not in _NOT_STARTED:
            return False
        if met and run.state.type is StateType.SCHEDULED:
            ended: OrchestrationResult[Any] = await client.set_flow_run_state(
                run.id, Completed(name=MET, message=MET_MESSAGE)
            )
            if ended.state is not None and ended.state.type is StateType.COMPLETED:
                return True
        result: OrchestrationResult[Any] = await client.set_flow_run_state(
            run.id, Cancelling(message=MET_MESSAGE if met else "cancelled by Carepath")
        )
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
        result: OrchestrationResult[Any] = await client.set_flow_run_state(
            run_id, Scheduled(scheduled_time=utc(at)), force=True
        )
        return result.state is not None and result.state.type is StateType.SCHEDULED


def current_run_id() -> str:
    """The id of the flow run this code runs in; raises outside one."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise OrchestrationError("not inside a flow run")
    return str(context.flow_run.id)


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


async def cancel_auto_scheduled_runs(
    deployment_names: Iterable[str], *, due_before: datetime | None = None, message: str = "replaced by the sweep timer"
) -> int:
    """Cancel runs of these deployments that their (former) schedule created and that have not started; with
    ``due_before``, only those that were due before it (the late ones).

    Why: when a deployment loses its schedule, Prefect deletes its *future* auto-scheduled runs but keeps the
    ones already late, which would all start at once (the sweep's interval runs after an outage); a daily
    schedule's runs missed during an outage would likewise all start at once, one process each.
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
            late = due_before is None or (run.expected_start_time is not None and run.expected_start_time < due_before)
            if run.auto_scheduled and late:
                await client.set_flow_run_state(run.id, Cancelled(message=message), force=True)
                done += 1
        return done
