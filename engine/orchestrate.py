"""The bridge from the store's timers to Prefect runs, and from episodes to Prefect artifacts.

A pending rung in the store is a durable timer; here it becomes a scheduled run of its pathway's deadline
deployment at the rung's wall time, with the rung id as idempotency key (so scheduling twice makes one run), and
the run id goes back on the rung (so meeting the deadline can cancel it). What reaches Prefect: episode ids,
rung ids, pathway and stage ids, and the pathway's own work titles.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from engine import prefect_ops, store
from engine.clock import utc
from engine.runtime import Runtime
from engine.service import Changes
from engine.store import EpisodeRecord, RungRecord, WorkItemRecord
from engine.views import discrepancy_rows, episode_markdown, episode_status, open_escalation_rows

__all__ = [
    "Result",
    "cancel_runs",
    "deployment_name",
    "describe_event",
    "notify_escalations",
    "overdue_rungs",
    "publish_episode",
    "rename_current_run",
    "schedule_rungs",
    "unscheduled_by_kind",
    "unscheduled_episodes",
    "wall_seconds_until_due",
]

ESCALATIONS_ARTIFACT = "open-escalations"
#: Prefect API calls in flight at once when (un)scheduling a transition's timers (a SQLite Prefect server
#: answers 503 and retries when more writes overlap).
CONCURRENCY = 3


def deployment_name(pathway_id: str, kind: str) -> str:
    """``reentry``, ``deadline`` -> ``reentry-deadline/reentry``."""
    return f"{pathway_id}-{kind}/{pathway_id}"


@dataclass
class Result:
    """What a flow reports about the change it made (serialisable, no PHI)."""

    episode_id: str
    stage: str
    moved: tuple[str, str] | None = None
    escalations: list[tuple[str, str]] = field(default_factory=list)
    cancel_runs: list[str] = field(default_factory=list)
    duplicate: bool = False

    @classmethod
    def of(cls, changes: Changes) -> Result:
        return cls(
            changes.episode_id,
            changes.stage,
            changes.moved,
            list(changes.escalations),
            list(changes.cancel_runs),
            changes.duplicate,
        )


def unscheduled_by_kind(rt: Runtime, episode_id: str) -> dict[str, list[str]]:
    """Pending rungs of one episode that have no Prefect run yet, grouped by kind of work."""
    return unscheduled_episodes(rt, episode_id).get(episode_id, {})


def unscheduled_episodes(
    rt: Runtime, episode_id: str | None = None, limit: int = 500
) -> dict[str, dict[str, list[str]]]:
    """The next rung of each open work item that has no run yet, by episode then kind of work.

    Only the lowest pending rung of an item gets a run: the deadline run that fires it schedules the next one.
    Most work is done before its first rung, so this halves the runs to create and to cancel.
    """
    with Session(rt.engine) as s:
        query = (
            select(
                RungRecord.id,
                RungRecord.episode_id,
                RungRecord.work_item_id,
                RungRecord.index,
                RungRecord.flow_run_id,
                WorkItemRecord.kind,
            )
            .join(WorkItemRecord, col(WorkItemRecord.id) == col(RungRecord.work_item_id))
            .where(RungRecord.status == "pending", WorkItemRecord.status == "open")
        )
        if episode_id:
            query = query.where(RungRecord.episode_id == episode_id)
        first: dict[str, tuple[int, str, str, str, str | None]] = {}
        for rung_id, ep, item, index, run_id, kind in s.exec(query.order_by(col(RungRecord.due_at)).limit(limit * 4)):
            if item not in first or index < first[item][0]:
                first[item] = (index, rung_id, ep, kind, run_id)
        out: dict[str, dict[str, list[str]]] = {}
        for _index, rung_id, ep, kind, run_id in first.values():
            if run_id is None:
                out.setdefault(ep, {}).setdefault(kind, []).append(rung_id)
        return out


def overdue_rungs(rt: Runtime, grace_seconds: float, limit: int = 500) -> list[tuple[str, str]]:
    """Pending rungs whose wall due time passed more than ``grace_seconds`` ago: their run was lost or late."""
    clock = rt.clock
    horizon = clock.pathway_time(clock.wall_time(clock.now()) - timedelta(seconds=grace_seconds))
    with Session(rt.engine) as s:
        rows = s.exec(
            select(RungRecord.id, RungRecord.episode_id)
            .where(RungRecord.status == "pending", col(RungRecord.due_at) <= horizon)
            .order_by(col(RungRecord.due_at))
            .limit(limit)
        ).all()
        return [(r, e) for r, e in rows]


def wall_seconds_until_due(rt: Runtime, rung_id: str) -> float:
    """Wall seconds until a pending rung is due (<= 0 when due, unknown or no longer pending)."""
    clock = rt.clock
    with Session(rt.engine) as s:
        rung = s.get(RungRecord, rung_id)
        if rung is None or rung.status != "pending":
            return 0.0
        due = utc(rung.due_at)
    return (clock.wall_time(due) - clock.wall_time(clock.now())).total_seconds()


async def schedule_rungs(rt: Runtime, rung_ids: list[str]) -> int:
    """Schedule a deadline run per rung (idempotent by rung id) and record the run ids; returns how many."""
    clock, service = rt.clock, rt.service  # resolved before the session: SQLite allows one writer at a time
    with Session(rt.engine) as s:
        rows = s.exec(
            select(RungRecord, WorkItemRecord, EpisodeRecord.pathway_id)
            .join(WorkItemRecord, col(WorkItemRecord.id) == col(RungRecord.work_item_id))
            .join(EpisodeRecord, col(EpisodeRecord.id) == col(RungRecord.episode_id))
            .where(col(RungRecord.id).in_(rung_ids), RungRecord.status == "pending")
        ).all()
        targets = [(r.id, r.episode_id, r.index, r.role, utc(r.due_at), w.title, p) for r, w, p in rows]
    limit = asyncio.Semaphore(CONCURRENCY)

    async def schedule(target: tuple[str, str, int, str, datetime, str, str]) -> tuple[str, str]:
        rung_id, episode_id, index, role, due_at, title, pathway_id = target
        async with limit:
            run_id = await prefect_ops.schedule_deployment_run(
                deployment_name(pathway_id, "deadline"),
                parameters={"episode_id": episode_id, "rung_id": rung_id},
                at=clock.wall_time(due_at),
                idempotency_key=rung_id,
                flow_run_name=f"{episode_id} · {title} · rung {index + 1} → {role} · due {due_at:%Y-%m-%d %H:%M}",
                tags=[f"pathway:{pathway_id}", "deadline", f"role:{role}"],
            )
        return rung_id, str(run_id)

    run_ids = dict(await asyncio.gather(*(schedule(t) for t in targets)))
    service.set_run_ids(run_ids)
    return len(run_ids)


async def cancel_runs(run_ids: list[str]) -> int:
    """Cancel scheduled runs of rungs whose work was met; a run already gone or running is left alone."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def cancel(run_id: str) -> bool:
        async with limit:
            return await prefect_ops.cancel_flow_run(run_id)

    return sum(await asyncio.gather(*(cancel(r) for r in run_ids)))


async def publish_episode(rt: Runtime, episode_id: str, escalations_changed: bool) -> None:
    """Refresh the episode's markdown artifact (and the operators' escalation table if it changed)."""
    status = episode_status(rt.engine, episode_id)
    await prefect_ops.publish_markdown_artifact(
        key=f"episode-{episode_id}".lower(),
        markdown=episode_markdown(status, rt.clock.now()),
        description=f"Episode {episode_id}: stage, open handoffs, next deadlines, escalations",
    )
    meds = discrepancy_rows(rt.engine, episode_id)
    if meds:
        await prefect_ops.publish_table_artifact(
            key=f"meds-{episode_id}".lower(),
            rows=[{k: v for k, v in row.items() if k != "id"} for row in meds],
            description=f"Episode {episode_id}: medication reconciliation of the current stage visit",
        )
    if escalations_changed:
        await prefect_ops.publish_table_artifact(
            key=ESCALATIONS_ARTIFACT,
            rows=open_escalation_rows(rt.engine),
            description="Open (unacknowledged) escalations across all episodes",
        )


def describe_event(event: str, result: Result | None) -> str:
    """Flow-run name tail: ``release -> community-care`` or the event name."""
    if result is None:
        return event
    if result.duplicate:
        return f"{event} (duplicate)"
    if result.moved:
        return f"{event}: {result.moved[0]} → {result.moved[1]}"
    return f"{event} in {result.stage}"


async def rename_current_run(rt: Runtime, episode_id: str, what: str) -> None:
    """Name the running flow run after what it did: ``ep-7f3a2c · detox.completed: detox → residential · next ...``."""
    status = episode_status(rt.engine, episode_id, audit_tail=0)
    nxt = f" · next: {status.items[0].title} by {utc(status.items[0].due_at):%Y-%m-%d %H:%M}" if status.items else ""
    await prefect_ops.rename_current_flow_run(f"{episode_id} · {what}{nxt}")


def notify_escalations(rt: Runtime, escalations: list[tuple[str, str]]) -> list[str]:
    """Deliver escalations to the people the roster names for their roles; every outcome is stored.

    With no roster configured (``CAREPATH_ROSTER`` or ``<home>/roster.yaml``) escalations are still raised and
    visible in Prefect and ``carepath status``; nothing is sent. Returns one summary line per escalation.
    """
    from dataclasses import asdict

    from engine.notify import deliver, escalation_notification
    from engine.roster import load_roster, roster_path

    path = roster_path(None, rt.env) or (rt.home / "roster.yaml")
    if not escalations or not path.exists():
        return []
    roster, clock = load_roster(path, env=rt.env), rt.clock
    lines = []
    for rung_id, role in escalations:
        with Session(rt.engine) as s:
            row = s.exec(
                select(RungRecord, WorkItemRecord, EpisodeRecord)
                .join(WorkItemRecord, col(WorkItemRecord.id) == col(RungRecord.work_item_id))
                .join(EpisodeRecord, col(EpisodeRecord.id) == col(RungRecord.episode_id))
                .where(RungRecord.id == rung_id)
            ).first()
            done = {d.key for d in store.deliveries_for(s, rung_id=rung_id) if d.status == "delivered"}
        if row is None:
            continue
        rung, item, episode = row
        note = escalation_notification(
            episode_id=episode.id,
            pathway_id=episode.pathway_id,
            stage_id=episode.stage,
            work_title=item.title,
            rung_id=rung.id,
            rung_index=rung.index,
            role=role,
            due_at=utc(item.due_at),
        )
        report = deliver(note, roster.contacts_for(role), now=clock.now, already_delivered=done)
        with store.session_scope(rt.engine) as s:
            for outcome in report.outcomes:
                store.record_delivery(s, {**asdict(outcome), "episode_id": episode.id}, clock.now())
            store.audit(s, episode.id, clock.now(), "carepath", "escalation.delivered", {"summary": report.summary()})
        lines.append(report.summary())
    return lines
