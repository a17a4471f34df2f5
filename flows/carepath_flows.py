"""Carepath's Prefect flows: thin entry points that call the episode service and schedule its timers.

Four flows, compiled per pathway into deployments by :func:`engine.compile.compile_deployments`:

- ``<pathway>-enroll``: schedule a new episode's timers and publish its artifact;
- ``<pathway>-event``: apply an event (idempotent by event id), schedule what it opened, cancel what it closed;
- ``<pathway>-deadline``: one escalation rung, run at its due time; re-checks the store before acting;
- ``carepath-sweep``: the safety net, every few seconds: fires due rungs whose run was lost and schedules
  rungs that have no run yet (a crash between the store commit and scheduling).

Parameters carry only opaque episode ids, event names, rung ids and the event's declared payload.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.states import Completed, Failed

from engine import orchestrate
from engine.errors import EventRejected
from engine.runtime import runtime_from_env

__all__ = ["MAX_EARLY_WAIT", "deadline_flow", "enroll_flow", "event_flow", "sweep_flow"]

#: A deadline run that starts up to this many seconds early waits for its time; earlier, the sweep takes over.
MAX_EARLY_WAIT = 120.0


@task(task_run_name="apply {event} to {episode_id}")
def apply_event(episode_id: str, event: str, data: dict[str, Any], event_id: str | None) -> orchestrate.Result | str:
    """The result of applying the event, or why it was rejected (a refusal is an answer, not a crash)."""
    try:
        changes = runtime_from_env().service.record_event(episode_id, event, data, event_id=event_id)
    except EventRejected as exc:
        return str(exc)
    return orchestrate.Result.of(changes)


@task(task_run_name="escalate {rung_id}")
def escalate(rung_id: str) -> orchestrate.Result | None:
    changes = runtime_from_env().service.fire_rung(rung_id)
    return orchestrate.Result.of(changes) if changes else None


@task(task_run_name="schedule {kind} deadlines of {episode_id}")
async def schedule_timers(episode_id: str, kind: str, rung_ids: list[str]) -> int:
    return await orchestrate.schedule_rungs(runtime_from_env(), rung_ids)


@task(task_run_name="cancel {count} timers", tags=["cancel"])
async def cancel_timers(run_ids: list[str], count: int) -> int:
    return await orchestrate.cancel_runs(run_ids)


@task(task_run_name="notify {count} escalations", retries=2, retry_delay_seconds=30)
async def notify(escalations: list[tuple[str, str]], count: int) -> list[str]:
    """Deliver to the roster's contacts; failures are stored and retried, never dropped silently.

    Delivery runs in a worker thread: apprise drives its own event loop, which cannot nest in the flow's.
    """
    return await asyncio.to_thread(orchestrate.notify_escalations, runtime_from_env(), escalations)


@task(task_run_name="publish {episode_id}")
async def publish(episode_id: str, escalated: bool) -> None:
    await orchestrate.publish_episode(runtime_from_env(), episode_id, escalations_changed=escalated)


async def _follow_up(episode_id: str, result: orchestrate.Result | None) -> None:
    """Schedule what opened (one task per kind of work), cancel what closed, publish the artifact."""
    rt = runtime_from_env()
    for kind, rung_ids in orchestrate.unscheduled_by_kind(rt, episode_id).items():
        await schedule_timers(episode_id, kind, rung_ids)
    if result and result.cancel_runs:
        await cancel_timers(result.cancel_runs, len(result.cancel_runs))
    if result and result.escalations:
        await notify(result.escalations, len(result.escalations))
    await publish(episode_id, bool(result and result.escalations))


@flow(name="carepath-enroll", description="Schedule the timers of a newly enrolled episode.")
async def enroll_flow(episode_id: str) -> dict[str, Any]:
    """Schedule every pending deadline of ``episode_id`` (idempotent) and publish its artifact."""
    await _follow_up(episode_id, None)
    await orchestrate.rename_current_run(runtime_from_env(), episode_id, "enrolled")
    return {"episode": episode_id}


@flow(name="carepath-event", description="Apply an event to an episode and follow up its timers.")
async def event_flow(
    episode_id: str, event: str, data: dict[str, Any] | None = None, event_id: str | None = None
) -> Any:
    """Apply ``event`` once; a rejected event fails the run with the reason and changes nothing."""
    result = apply_event(episode_id, event, data or {}, event_id)
    if isinstance(result, str):
        get_run_logger().warning("rejected: %s", result)
        return Failed(message=f"rejected: {result}")
    await _follow_up(episode_id, result)
    await orchestrate.rename_current_run(runtime_from_env(), episode_id, orchestrate.describe_event(event, result))
    return Completed(message="duplicate event: nothing changed" if result.duplicate else "applied", data=result)


@flow(name="carepath-deadline", description="Escalate one rung if its deadline is still unmet.")
async def deadline_flow(episode_id: str, rung_id: str) -> dict[str, Any]:
    """Re-check the store, escalate at most once, then schedule whatever follows (e.g. the next check-in).

    A runner may start a scheduled run a little early; the flow waits for the due time (a bounded wait) rather
    than leaving the rung to the sweep.
    """
    early = orchestrate.wall_seconds_until_due(runtime_from_env(), rung_id)
    if 0 < early <= MAX_EARLY_WAIT:
        await asyncio.sleep(early)
    result = escalate(rung_id)
    if result is None:  # a rung this store does not know (another deployment's store, or a deleted episode)
        get_run_logger().warning("rung %s is not in this store; nothing to do", rung_id)
        return {"escalated": False}
    await _follow_up(episode_id, result)
    return {"escalated": bool(result.escalations)}


@flow(
    name="carepath-sweep", description="Safety net: fire overdue rungs whose run was lost; schedule unscheduled ones."
)
async def sweep_flow(grace_seconds: float = 20.0) -> dict[str, int]:
    """Find rungs due more than ``grace_seconds`` (wall time) ago still pending, and rungs with no run."""
    rt = runtime_from_env()
    fired, scheduled = 0, 0
    for rung_id, episode_id in orchestrate.overdue_rungs(rt, grace_seconds):
        result = escalate(rung_id)
        fired += bool(result and result.escalations)
        await publish(episode_id, True)
    for episode_id, kinds in orchestrate.unscheduled_episodes(rt).items():
        for kind, rung_ids in kinds.items():
            scheduled += await schedule_timers(episode_id, kind, rung_ids)
    return {"fired": fired, "scheduled": scheduled}
