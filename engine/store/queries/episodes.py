"""Episodes, work items, rungs, the exactly-once writes (escalations, processed events), audit and settings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Engine, bindparam, exists, text, update
from sqlmodel import Session, col, select

from engine.errors import StoreError, UnknownEpisode, quote
from engine.store.db import WRITE_OPTION, dialect_insert, session_scope
from engine.store.records import (
    AuditRecord,
    EpisodeRecord,
    EscalationRecord,
    HandoffRecord,
    PathwayVersionRecord,
    ProcessedEventRecord,
    ReleasedRunRecord,
    RungRecord,
    SettingRecord,
    WorkItemRecord,
)
from engine.store.records.core import UNPUBLISHED

__all__ = [
    "acknowledge_escalation",
    "audit",
    "audit_tail",
    "cancel_pending_rungs",
    "episode_revisions",
    "get_episode",
    "get_setting",
    "latest_pathway_version",
    "list_episodes",
    "lock_episode",
    "mark_event_processed",
    "mark_published",
    "open_handoffs",
    "open_work_items",
    "pending_rungs",
    "processed_event",
    "put_setting",
    "raised_alert_ids",
    "record_escalation_once",
    "registered_pathway_ids",
    "set_rung_run",
    "unpublished_episodes",
]


# ------------------------------------------------------------------------------------------------ episodes


def get_episode(session: Session, episode_id: str) -> EpisodeRecord:
    """The episode, or :class:`~engine.errors.UnknownEpisode`."""
    episode = session.get(EpisodeRecord, episode_id)
    if episode is None:
        raise UnknownEpisode(f"no episode {quote(episode_id)}")
    return episode


def lock_episode(session: Session, episode_id: str) -> EpisodeRecord:
    """The episode, fresh from the database and locked against other writers until this transaction ends.

    PostgreSQL locks the row (``FOR UPDATE``); on SQLite the write scope's ``BEGIN IMMEDIATE`` already holds the
    database's write lock. Only a session from :func:`~engine.store.session_scope` may lock.
    """
    if session.connection().get_execution_options().get(WRITE_OPTION) is None:
        raise StoreError("lock_episode needs a write session: use engine.store.session_scope(engine)")
    query = (
        select(EpisodeRecord)
        .where(EpisodeRecord.id == episode_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    episode = session.exec(query).first()
    if episode is None:
        raise UnknownEpisode(f"no episode {quote(episode_id)}")
    return episode


def episode_revisions(session: Session, episode_ids: Iterable[str]) -> dict[str, int]:
    """Each episode's revision now. Read *before* its artifacts are built from the store: a change that lands while
    they are built leaves the episode behind (:func:`unpublished_episodes`), never marked as shown."""
    query = select(EpisodeRecord.id, EpisodeRecord.revision).where(col(EpisodeRecord.id).in_(list(episode_ids)))
    return {episode_id: revision for episode_id, revision in session.exec(query)}


def mark_published(session: Session, revisions: Mapping[str, int]) -> None:
    """Record that each episode's artifacts now show ``revisions[id]`` (never moving back: a slower publisher of an
    older revision must not mark a newer one as shown). Row by row in id order, so two publishers cannot deadlock."""
    for episode_id in sorted(revisions):
        session.execute(
            update(EpisodeRecord)
            .where(col(EpisodeRecord.id) == episode_id, col(EpisodeRecord.published_revision) < revisions[episode_id])
            .values(published_revision=revisions[episode_id])
        )


def unpublished_episodes(session: Session, changed_before: datetime, limit: int = 200) -> list[str]:
    """Episodes changed before ``changed_before`` whose artifacts show an older revision, the longest behind first
    (through the partial index ``ix_episode_unpublished``: it holds only rows that are behind)."""
    query = (
        select(EpisodeRecord.id)
        .where(text(UNPUBLISHED), col(EpisodeRecord.updated_at) <= changed_before)
        .order_by(col(EpisodeRecord.updated_at))
        .limit(limit)
    )
    return list(session.exec(query))


def list_episodes(
    session: Session,
    *,
    pathway: str | None = None,
    stage: str | None = None,
    status: str | None = None,
    person_ref: str | None = None,
    overdue_at: datetime | None = None,
    limit: int | None = None,
) -> list[EpisodeRecord]:
    """Episodes for a caseload table, oldest enrolment first; ``overdue_at`` keeps those with open work due by then."""
    query = select(EpisodeRecord)
    if pathway is not None:
        query = query.where(EpisodeRecord.pathway_id == pathway)
    if stage is not None:
        query = query.where(EpisodeRecord.stage == stage)
    if status is not None:
        query = query.where(EpisodeRecord.status == status)
    if person_ref is not None:
        query = query.where(EpisodeRecord.person_ref == person_ref)
    if overdue_at is not None:
        late = exists().where(
            col(WorkItemRecord.episode_id) == col(EpisodeRecord.id),
            col(WorkItemRecord.status) == "open",
            col(WorkItemRecord.due_at) <= overdue_at,
        )
        query = query.where(late)
    query = query.order_by(col(EpisodeRecord.enrolled_at), col(EpisodeRecord.id))
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def latest_pathway_version(session: Session, pathway_id: str) -> PathwayVersionRecord | None:
    """The newest registered version of a pathway (new episodes enroll on it), or None."""
    query = (
        select(PathwayVersionRecord)
        .where(PathwayVersionRecord.pathway_id == pathway_id)
        .order_by(col(PathwayVersionRecord.version).desc())
    )
    return session.exec(query).first()


def registered_pathway_ids(session: Session) -> list[str]:
    """Every pathway id with a registered version, sorted."""
    return sorted(set(session.exec(select(PathwayVersionRecord.pathway_id))))


# Statements read for every event and follow-up are built once, with bind parameters: building a statement and
# its cache key on each call cost ~120 us of CPU, three times running it (SQLite, an empty result).
EPISODE_ID: BindParameter[str] = bindparam("episode_id")
VISIT: BindParameter[int] = bindparam("visit")

_OPEN_WORK = (
    select(WorkItemRecord)
    .where(WorkItemRecord.episode_id == EPISODE_ID, WorkItemRecord.status == "open")
    .order_by(col(WorkItemRecord.due_at), col(WorkItemRecord.id))
)
_RAISED_ALERTS = select(WorkItemRecord.id).where(
    WorkItemRecord.episode_id == EPISODE_ID, WorkItemRecord.visit == VISIT, WorkItemRecord.kind == "alert"
)
_OPEN_HANDOFFS = (
    select(HandoffRecord)
    .where(HandoffRecord.episode_id == EPISODE_ID, col(HandoffRecord.closed_at).is_(None))
    .order_by(col(HandoffRecord.opened_at), col(HandoffRecord.id))
)
_PENDING_RUNGS = (
    select(RungRecord)
    .where(RungRecord.episode_id == EPISODE_ID, RungRecord.status == "pending")
    .order_by(col(RungRecord.due_at), col(RungRecord.id))
)


def open_work_items(session: Session, episode_id: str) -> list[WorkItemRecord]:
    """The episode's open work, soonest deadline first."""
    return list(session.exec(_OPEN_WORK, params={"episode_id": episode_id}))


def raised_alert_ids(session: Session, episode_id: str, visit: int) -> set[str]:
    """Ids of the alert items a stage visit has raised, open or closed (an alert is raised once)."""
    return set(session.exec(_RAISED_ALERTS, params={"episode_id": episode_id, "visit": visit}))


def open_handoffs(session: Session, episode_id: str) -> list[HandoffRecord]:
    """The episode's handoffs not yet closed, oldest first."""
    return list(session.exec(_OPEN_HANDOFFS, params={"episode_id": episode_id}))


# -------------------------------------------------------------------------------------------------- rungs


def pending_rungs(session: Session, episode_id: str) -> list[RungRecord]:
    """The episode's pending rungs, soonest first."""
    return list(session.exec(_PENDING_RUNGS, params={"episode_id": episode_id}))


def set_rung_run(session: Session, rung_id: str, flow_run_id: str, now: datetime) -> bool:
    """Remember the Prefect run that will fire a pending rung; False if it already has one, is not pending, or the
    run is being cancelled (released: the rung stays without a run and is scheduled again)."""
    released = exists().where(col(ReleasedRunRecord.run_id) == flow_run_id)
    result = session.execute(
        update(RungRecord)
        .where(
            col(RungRecord.id) == rung_id,
            col(RungRecord.status) == "pending",
            col(RungRecord.flow_run_id).is_(None),
            ~released,
        )
        .values(flow_run_id=flow_run_id, scheduled_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def cancel_pending_rungs(session: Session, work_item_id: str) -> list[RungRecord]:
    """Cancel a work item's pending rungs (its deadline was met or dropped); returns them, for their run ids."""
    rungs = list(
        session.exec(
            select(RungRecord)
            .where(RungRecord.work_item_id == work_item_id, RungRecord.status == "pending")
            .order_by(col(RungRecord.index))
        )
    )
    for rung in rungs:
        rung.status = "cancelled"
        session.add(rung)
    return rungs


# ------------------------------------------------------------------------------------- exactly-once writes


def record_escalation_once(
    session: Session, rung: RungRecord, now: datetime, *, severity: str = "normal", claimed_at: datetime | None = None
) -> EscalationRecord | None:
    """Raise the rung's escalation and mark the rung fired; None if this rung had already escalated.

    ``claimed_at`` (wall time) records that the caller will deliver it now; the sweep delivers unclaimed ones.
    """
    statement = (
        dialect_insert(session, EscalationRecord)
        .values(
            rung_id=rung.id,
            episode_id=rung.episode_id,
            work_item_id=rung.work_item_id,
            role=rung.role,
            raised_at=now,
            severity=severity,
            delivery_claimed_at=claimed_at,
        )
        .on_conflict_do_nothing(index_elements=["rung_id"])
        .returning(col(EscalationRecord.id))
    )
    new_id = session.execute(statement).scalar_one_or_none()
    if rung.status != "fired":
        rung.status = "fired"
        session.add(rung)
    session.flush()
    return None if new_id is None else session.get(EscalationRecord, new_id)


def acknowledge_escalation(session: Session, escalation_id: int, by: str, now: datetime) -> bool:
    """Mark an escalation acknowledged by ``by``; False if unknown or already acknowledged."""
    escalation = session.get(EscalationRecord, escalation_id)
    if escalation is None or escalation.acknowledged_at is not None:
        return False
    escalation.acknowledged_at, escalation.acknowledged_by = now, by
    session.add(escalation)
    return True


def mark_event_processed(
    session: Session,
    event_id: str,
    episode_id: str,
    name: str,
    now: datetime,
    outcome: str = "applied",
    detail: str | None = None,
    digest: str | None = None,
) -> bool:
    """Claim ``event_id`` on ``episode_id`` for this transaction; False if that episode processed it before (then
    apply nothing). Ids are per episode: another episode may use the same id."""
    statement = (
        dialect_insert(session, ProcessedEventRecord)
        .values(
            event_id=event_id,
            episode_id=episode_id,
            name=name,
            received_at=now,
            outcome=outcome,
            detail=detail,
            digest=digest,
        )
        .on_conflict_do_nothing(index_elements=["episode_id", "event_id"])
        .returning(col(ProcessedEventRecord.event_id))
    )
    return session.execute(statement).scalar_one_or_none() is not None


def processed_event(session: Session, episode_id: str, event_id: str) -> ProcessedEventRecord | None:
    """The record of an event id an episode already processed, if any."""
    return session.get(ProcessedEventRecord, (episode_id, event_id), populate_existing=True)


# ------------------------------------------------------------------------------------------ audit, settings


def audit(
    session: Session,
    episode_id: str | None,
    at: datetime,
    actor: str,
    action: str,
    detail: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditRecord:
    """Append one line to the audit trail (who, what, when, why). There is no update or delete."""
    record = AuditRecord(episode_id=episode_id, at=at, actor=actor, action=action, detail=detail, reason=reason)
    session.add(record)
    return record


def audit_tail(session: Session, episode_id: str | None, limit: int = 10) -> list[AuditRecord]:
    """The last ``limit`` audit lines of an episode (or of the whole store when None), oldest first."""
    query = select(AuditRecord)
    if episode_id is not None:
        query = query.where(AuditRecord.episode_id == episode_id)
    rows = list(session.exec(query.order_by(col(AuditRecord.id).desc()).limit(limit)))
    return rows[::-1]


def get_setting(db: Engine | Session, key: str, default: Any = None) -> Any:
    """A shared setting's JSON value, or ``default``."""
    if isinstance(db, Engine):
        with Session(db) as session:
            return get_setting(session, key, default)
    row = db.get(SettingRecord, key, populate_existing=True)
    return default if row is None else row.value


def put_setting(db: Engine | Session, key: str, value: Any) -> None:
    """Set a shared setting (insert or replace)."""
    if isinstance(db, Engine):
        with session_scope(db) as session:
            put_setting(session, key, value)
        return
    statement = dialect_insert(db, SettingRecord).values(key=key, value=value)
    db.execute(statement.on_conflict_do_update(index_elements=["key"], set_={"value": statement.excluded.value}))
