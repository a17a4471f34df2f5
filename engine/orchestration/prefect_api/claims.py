"""Claiming a deployment's due runs and running one in this process: the calls behind
:mod:`engine.orchestration.in_process`.

A claim is Prefect's own: the run is moved ``Scheduled -> Pending`` by one state proposal, which the server grants
once (a second ``Pending`` is refused), exactly as Prefect's runner takes a run before starting its process. So a
run claimed here is started by nobody else, and a run another serving process or the runner took first is skipped.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from engine.clock import utc
from engine.orchestration.prefect_api.calls import _client, _deployment, _read_run, with_run_client
from engine.orchestration.prefect_api.operators import MET, MET_MESSAGE

__all__ = ["claim_due_runs", "deployment_ids", "run_claimed"]


async def deployment_ids(names: Iterable[str]) -> dict[str, UUID]:
    """The ids of those of these deployments that are registered (``flow/deployment`` -> id)."""
    async with _client("cannot read deployments") as client:
        found = {name: await _deployment(client, name, missing_ok=True) for name in names}
    return {name: d.id for name, d in found.items() if d is not None}


async def claim_due_runs(ids: Iterable[UUID], before: datetime, limit: int) -> list[Any]:
    """Claim up to ``limit`` Scheduled runs of these deployments due by ``before``, oldest first; returns the
    flow runs this call moved to Pending (the others were taken by someone else meanwhile)."""
    from prefect.exceptions import Abort
    from prefect.states import Pending
    from prefect.utilities.engine import propose_state

    wanted = list(ids)
    if not wanted or limit < 1:
        return []
    claimed = []
    async with _client("cannot claim due runs") as client:
        due = await client.get_scheduled_flow_runs_for_deployments(wanted, scheduled_before=before, limit=limit)
        for run in due:
            try:
                state = await propose_state(client, Pending(), flow_run_id=run.id)
            except Abort:  # another process took it first
                continue
            if state.is_pending():
                claimed.append(run)
    return claimed


async def run_claimed(flow: Any, run: Any) -> str:
    """Wait for the claimed ``run``'s time, then run ``flow`` as that run, in this process; returns how it ended
    (the final state's name, or why it did not run).

    A run cancelled while it waited (``Cancelling``) is ended here, as Prefect's runner does once it has stopped a
    run's process: ``Met`` when its deadlines were met in time (what operators see of a Scheduled run met in time),
    ``Cancelled`` otherwise; a run no longer Pending (the reconciler put it back, an operator moved it) is left as
    it is."""
    from prefect.client.schemas.objects import StateType
    from prefect.flow_engine import run_flow_async
    from prefect.states import Cancelled, Completed

    at = run.state.state_details.scheduled_time if run.state is not None else None
    at = at or run.expected_start_time
    if at is not None:
        wait = (utc(at) - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
    async with _client(f"cannot start flow run {run.id}") as client:
        fresh = await _read_run(client, run.id)
        state = fresh.state if fresh is not None else None
        if state is None or state.type is not StateType.PENDING:
            if state is not None and state.type is StateType.CANCELLING:
                met = state.message == MET_MESSAGE
                end: Any = Completed(name=MET, message=MET_MESSAGE) if met else Cancelled(message=state.message)
                await client.set_flow_run_state(run.id, end, force=True)
                return str(end.name)
            return f"not run: {state.type.value if state else 'gone'}"
        # which process runs it, as Prefect's workers record theirs ("host:pid")
        await client.update_flow_run(run.id, infrastructure_pid=f"{socket.gethostname()}:{os.getpid()}")
    ended = await with_run_client(
        run_flow_async(flow, flow_run=fresh, parameters=dict(fresh.parameters), return_type="state")
    )
    return str(getattr(ended, "name", ended))
