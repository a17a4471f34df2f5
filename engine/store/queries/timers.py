"""What the follow-up and the sweep read and claim: due rungs, timers without a run, deliveries to make,
inbound events stuck before processing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Exists, Integer, bindparam, delete, exists, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from engine.store.db import dialect_insert
from engine.store.queries.episodes import EPISODE_ID, set_rung_run
from engine.store.records import (
    EpisodeRecord,
    EscalationRecord,
    InboundEventRecord,
    ReleasedRunRecord,
    RungRecord,
    WorkItemRecord,
)

__all__ = [
    "EscalationNotice",
    "LinkedRung",
    "TimerRow",
    "claim_delivery",
    "due_pending_rungs",
    "episodes_with_due_rungs",
    "escalation_notices",
    "escalations_to_deliver",
    "finish_delivery",
    "forget_releases",
    "linked_rungs",
    "prune_releases",
    "release_runs",
    "run_needs",
    "set_rung_runs",
    "stuck_inbound_events",
    "unlink_pending_rungs",
    "unscheduled_timers",
    "work_met",
]


# ---------------------------------------------------------------------------------- timers and deliveries


_DUE_PENDING = (  # built once (see engine.store.queries.episodes): every follow-up reads it
    select(RungRecord)
    .where(
        RungRecord.episode_id == EPISODE_ID, RungRecord.status == "pending", col(RungRecord.due_at) <= bindparam("now")
    )
    .order_by(col(RungRecord.due_at), col(RungRecord.index), col(RungRecord.id))
    .limit(bindparam("limit", type_=Integer))
)


def due_pending_rungs(session: Session, episode_id: str, now: datetime, limit: int = 100) -> list[RungRecord]:
    """An episode's pending rungs due at or before ``now``, oldest first (fired at once by the follow-up)."""
    return list(session.exec(_DUE_PENDING, params={"episode_id": episode_id, "now": now, "limit": limit}))


def episodes_with_due_rungs(
    session: Session, horizon: datetime, limit: int = 200, *, unlinked_horizon: datetime | None = None
) -> list[str]:
    """Episodes holding a pending rung due at or before ``horizon`` (their run was lost or late), or, with
    ``unlinked_horizon``, a pending rung without a run due at or before that (no run will fire it: its scheduling
    failed), most overdue first: the sweep's lookup, served by the index (status, due_at)."""
    # the oldest due rungs by the index, then their episodes in that order: a GROUP BY over every due rung would
    # read them all (hundreds of thousands after an outage) to return a few hundred episodes
    due = col(RungRecord.due_at) <= horizon
    if unlinked_horizon is not None and unlinked_horizon > horizon:  # one range of the index, then a filter
        # a rung above a pending one has no run by design (the lower one's run schedules it): not a lost one
        unlinked = col(RungRecord.flow_run_id).is_(None) & ~_lower_pending()
        due = (col(RungRecord.due_at) <= unlinked_horizon) & or_(col(RungRecord.due_at) <= horizon, unlinked)
    query = (
        select(RungRecord.episode_id)
        .where(RungRecord.status == "pending", due)
        .order_by(col(RungRecord.due_at))
        .limit(limit * 8)
    )
    return list(dict.fromkeys(session.exec(query)))[:limit]


@dataclass(frozen=True)
class TimerRow:
    """What scheduling a rung's run needs: the rung, its work's title and its episode's pathway."""

    rung_id: str
    episode_id: str
    pathway_id: str
    index: int
    role: str
    due_at: datetime
    title: str
    severity: str


def unscheduled_timers(
    session: Session,
    episodes: str | Sequence[str] | None = None,
    limit: int = 500,
    *,
    due_before: datetime | None = None,
) -> list[TimerRow]:
    """The next pending rung of each open work item that has no Prefect run yet (of one episode, of these, or of
    all).

    Only the lowest pending rung of an item gets a run: the run that fires it schedules the next one. Most work is
    done before its first rung, so this halves the runs to create and to cancel. The lookup asks for exactly
    those rungs (no lower pending rung in the item), so rungs that already have runs never crowd them out.
    """
    query = (
        select(RungRecord, WorkItemRecord.title, WorkItemRecord.severity, EpisodeRecord.pathway_id)
        .join(WorkItemRecord, col(WorkItemRecord.id) == col(RungRecord.work_item_id))
        .join(EpisodeRecord, col(EpisodeRecord.id) == col(RungRecord.episode_id))
        .where(
            RungRecord.status == "pending",
            col(RungRecord.flow_run_id).is_(None),
            WorkItemRecord.status == "open",
            ~_lower_pending(),
        )
    )
    if isinstance(episodes, str):
        query = query.where(RungRecord.episode_id == episodes)
    elif episodes is not None:
        query = query.where(col(RungRecord.episode_id).in_(list(episodes)))
    if due_before is not None:
        query = query.where(col(RungRecord.due_at) < due_before)
    rows = session.exec(query.order_by(col(RungRecord.due_at), col(RungRecord.id)).limit(limit))
    return [
        TimerRow(r.id, r.episode_id, pathway, r.index, r.role, r.due_at, title, severity)
        for r, title, severity, pathway in rows
    ]


def _lower_pending() -> Exists:
    """Whether the rung's work item has a pending rung below it (correlated to the outer query's rung)."""
    lower = aliased(RungRecord)
    return (
        exists()
        .where(
            col(lower.work_item_id) == col(RungRecord.work_item_id),
            col(lower.status) == "pending",
            col(lower.index) < col(RungRecord.index),
        )
        .correlate(RungRecord)
    )


def set_rung_runs(session: Session, run_ids: Mapping[str, str], now: datetime) -> int:
    """Remember the Prefect run that will fire each pending rung (so meeting the deadline can cancel it)."""
    return sum(set_rung_run(session, rung_id, run_id, now) for rung_id, run_id in run_ids.items())


def run_needs(session: Session, run_ids: Iterable[str]) -> dict[str, bool]:
    """For each of these runs some rung of this store is linked to: True if a pending rung still needs it.

    A deadline run carries every rung of its pathway due in its minute: meeting one deadline must not cancel the
    run the others wait for. Runs no rung here is linked to (another store's, or one just created) are left out.
    """
    ids = list(dict.fromkeys(run_ids))
    out: dict[str, bool] = {}
    for start in range(0, len(ids), 500):  # keep each IN list short
        query = select(RungRecord.flow_run_id, RungRecord.status).where(
            col(RungRecord.flow_run_id).in_(ids[start : start + 500])
        )
        for run_id, status in session.exec(query):
            out[str(run_id)] = out.get(str(run_id), False) or status == "pending"
    return out


def release_runs(session: Session, run_ids: Iterable[str], wall_now: datetime) -> None:
    """Mark these runs as being cancelled: from now on no rung joins them (:func:`set_rung_run` refuses)."""
    for run_id in dict.fromkeys(run_ids):
        session.execute(
            dialect_insert(session, ReleasedRunRecord)
            .values(run_id=run_id, released_at=wall_now)
            .on_conflict_do_nothing()
        )


def forget_releases(session: Session, run_ids: Iterable[str]) -> None:
    """These runs are not cancelled after all (a rung joined before the mark): rungs may join them again."""
    ids = list(dict.fromkeys(run_ids))
    if ids:
        session.execute(
            delete(ReleasedRunRecord)
            .where(col(ReleasedRunRecord.run_id).in_(ids))
            .execution_options(synchronize_session=False)
        )


def prune_releases(session: Session, before: datetime) -> int:
    """Forget marks older than ``before`` (wall time): their runs ended long ago and their minutes are past."""
    result = session.execute(
        delete(ReleasedRunRecord)
        .where(col(ReleasedRunRecord.released_at) < before)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def unlink_pending_rungs(session: Session, run_ids: Iterable[str]) -> int:
    """Forget the run of every pending rung linked to one of these (cancelled) runs, so it is scheduled again."""
    ids = list(dict.fromkeys(run_ids))
    done = 0
    for start in range(0, len(ids), 500):
        result = session.execute(
            update(RungRecord)
            .where(col(RungRecord.status) == "pending", col(RungRecord.flow_run_id).in_(ids[start : start + 500]))
            .values(flow_run_id=None, scheduled_at=None)
            .execution_options(synchronize_session=False)
        )
        done += result.rowcount  # type: ignore[attr-defined]
    return done


@dataclass(frozen=True)
class LinkedRung:
    """A rung linked to a deadline run, with what the run's listing shows of it."""

    rung_id: str
    episode_id: str
    index: int
    role: str
    status: str
    due_at: datetime
    title: str
    severity: str
    met: bool = False  # its work was done before it came due (not closed by a rung, an acknowledgement or an end)


def linked_rungs(session: Session, run_id: str) -> list[LinkedRung]:
    """Every rung linked to the deadline run ``run_id`` (any status), soonest due first."""
    rows = session.exec(
        select(  # type: ignore[call-overload]  # five columns: sqlmodel's select() types at most four
            RungRecord, WorkItemRecord.title, WorkItemRecord.severity, WorkItemRecord.status, WorkItemRecord.closed_by
        )
        .join(WorkItemRecord, col(WorkItemRecord.id) == col(RungRecord.work_item_id))
        .where(RungRecord.flow_run_id == run_id)
        .order_by(col(RungRecord.due_at), col(RungRecord.id))
    )
    return [
        LinkedRung(r.id, r.episode_id, r.index, r.role, r.status, r.due_at, title, severity, _met(r, item, closed_by))
        for r, title, severity, item, closed_by in rows
    ]


def work_met(item_status: str, closed_by: str | None) -> bool:
    """Whether a closed work item was met (done, not closed by one of its rungs): its timers end ``Met``, not
    cancelled."""
    return item_status == "done" and not (closed_by or "").startswith("rung ")


def _met(rung: RungRecord, item_status: str, closed_by: str | None) -> bool:
    return rung.status == "cancelled" and work_met(item_status, closed_by)


@dataclass(frozen=True)
class EscalationNotice:
    """What an escalation's message and delivery need (opaque ids and the pathway's words only)."""

    escalation_id: int
    rung_id: str
    rung_index: int
    role: str
    episode_id: str
    pathway_id: str
    stage: str
    work_title: str
    due_at: datetime
    severity: str


def escalation_notices(session: Session, rung_ids: Iterable[str]) -> list[EscalationNotice]:
    """The notices of the escalations raised for these rungs, in the order given (unknown rungs are left out)."""
    ids = list(dict.fromkeys(rung_ids))
    if not ids:
        return []
    rows = session.exec(
        select(EscalationRecord, RungRecord, WorkItemRecord, EpisodeRecord)
        .join(RungRecord, col(RungRecord.id) == col(EscalationRecord.rung_id))
        .join(WorkItemRecord, col(WorkItemRecord.id) == col(EscalationRecord.work_item_id))
        .join(EpisodeRecord, col(EpisodeRecord.id) == col(EscalationRecord.episode_id))
        .where(col(EscalationRecord.rung_id).in_(ids))
    ).all()
    found = {
        e.rung_id: EscalationNotice(
            e.id or 0, r.id, r.index, e.role, ep.id, ep.pathway_id, ep.stage, w.title, w.due_at, e.severity
        )
        for e, r, w, ep in rows
    }
    return [found[i] for i in ids if i in found]


def escalations_to_deliver(session: Session, stale_before: datetime, limit: int = 200) -> list[str]:
    """Rung ids of escalations whose delivery nobody finished: never claimed, or claimed before ``stale_before``
    (wall time; the process delivering them died). Oldest first."""
    query = (
        select(EscalationRecord.rung_id)
        .where(
            col(EscalationRecord.delivery_done_at).is_(None),
            or_(
                col(EscalationRecord.delivery_claimed_at).is_(None),
                col(EscalationRecord.delivery_claimed_at) < stale_before,
            ),
        )
        .order_by(col(EscalationRecord.raised_at), col(EscalationRecord.id))
        .limit(limit)
    )
    return list(session.exec(query))


def claim_delivery(session: Session, rung_id: str, wall_now: datetime, stale_before: datetime) -> bool:
    """Take on delivering the escalation of ``rung_id``; False if it is done or another process holds a fresh claim."""
    result = session.execute(
        update(EscalationRecord)
        .where(
            col(EscalationRecord.rung_id) == rung_id,
            col(EscalationRecord.delivery_done_at).is_(None),
            or_(
                col(EscalationRecord.delivery_claimed_at).is_(None),
                col(EscalationRecord.delivery_claimed_at) < stale_before,
            ),
        )
        .values(delivery_claimed_at=wall_now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish_delivery(session: Session, rung_id: str, wall_now: datetime) -> None:
    """Every contact of the escalation of ``rung_id`` has an outcome recorded."""
    session.execute(
        update(EscalationRecord)
        .where(col(EscalationRecord.rung_id) == rung_id)
        .values(delivery_done_at=wall_now)
        .execution_options(synchronize_session=False)
    )


def stuck_inbound_events(session: Session, received_before: datetime, limit: int = 100) -> list[str]:
    """Inbound events received before ``received_before`` and never applied nor refused (their run died)."""
    query = (
        select(InboundEventRecord.id)
        .where(InboundEventRecord.status == "received", col(InboundEventRecord.received_at) < received_before)
        .order_by(col(InboundEventRecord.received_at))
        .limit(limit)
    )
    return list(session.exec(query))
