"""The episode service: pure semantics (:mod:`engine.episode`) applied to the store in one transaction each.

This is the only place that turns an :class:`~engine.episode.Outcome` into rows. It never talks to Prefect:
every call returns what changed in timers (rungs to schedule, runs to cancel), and the orchestration layer acts
on that *after* the transaction commits. If a process dies in between, the store still holds every pending
rung without a scheduled run, and the sweep schedules or fires it: nothing is lost, and the unique escalation
per rung means nothing is doubled.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from engine import store
from engine.clock import Clock, utc
from engine.episode import EpisodeState, Event, Handoff, Outcome, Rung, WorkItem, apply_event, enroll, fire_rung
from engine.errors import EpisodeError, PathwayError, UnknownEpisode
from engine.loader import load_pathway_text
from engine.model import PathwaySpec
from engine.plan import Plan, compile_plan
from engine.store import (
    EpisodeRecord,
    HandoffRecord,
    PathwayVersionRecord,
    RungRecord,
    StageVisitRecord,
    WorkItemRecord,
)

__all__ = ["Changes", "EpisodeService", "TimerRef"]


@dataclass(frozen=True)
class TimerRef:
    """A rung the orchestration layer must schedule: fire ``rung_id`` of ``episode_id`` at pathway time ``due_at``."""

    rung_id: str
    episode_id: str
    pathway_id: str
    due_at: datetime
    title: str
    role: str


@dataclass
class Changes:
    """What one service call changed, for scheduling and for the operator's view."""

    episode_id: str
    pathway_id: str
    stage: str
    schedule: list[TimerRef] = field(default_factory=list)
    cancel_runs: list[str] = field(default_factory=list)
    escalations: list[tuple[str, str]] = field(default_factory=list)
    moved: tuple[str, str] | None = None
    duplicate: bool = False


def new_episode_id() -> str:
    """An opaque episode id; it carries nothing about the person."""
    return f"ep-{secrets.token_hex(4)}"


@lru_cache(maxsize=256)
def _plan_from_text(text: str, name: str, params_key: tuple[tuple[str, float], ...]) -> Plan:
    result = load_pathway_text(text, name)
    if not result.ok or result.spec is None:
        raise PathwayError([d for d in result.diagnostics if d.severity == "error"])
    return compile_plan(result.spec, {k: timedelta(seconds=v) for k, v in params_key})


class EpisodeService:
    """Enroll, record events, fire rungs and read episodes; each write is one transaction."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    # ------------------------------------------------------------------------------------------ pathways

    def register_pathway(self, spec: PathwaySpec, text: str) -> bool:
        """Pin ``spec``'s text under (id, version); True if new. Same version with other text is refused."""
        sha = hashlib.sha256(text.encode()).hexdigest()
        with store.session_scope(self.engine) as session:
            found = session.get(PathwayVersionRecord, (spec.id, spec.version))
            if found is not None:
                if found.source_sha256 != sha:
                    raise EpisodeError(
                        f"pathway '{spec.id}' version {spec.version} is already registered with other content; "
                        "increase `version` in the YAML when you change a pathway"
                    )
                return False
            session.add(
                PathwayVersionRecord(
                    pathway_id=spec.id,
                    version=spec.version,
                    source_text=text,
                    source_sha256=sha,
                    registered_at=self.clock.now(),
                )
            )
            store.audit(
                session, None, self.clock.now(), "carepath", "pathway.registered", {"id": spec.id, "v": spec.version}
            )
        return True

    def latest_version(self, session: Session, pathway_id: str) -> PathwayVersionRecord:
        rows = session.exec(
            select(PathwayVersionRecord)
            .where(PathwayVersionRecord.pathway_id == pathway_id)
            .order_by(PathwayVersionRecord.version.desc())  # type: ignore[attr-defined]
        ).first()
        if rows is None:
            known = ", ".join(sorted({r.pathway_id for r in session.exec(select(PathwayVersionRecord))})) or "none"
            raise EpisodeError(f"no pathway '{pathway_id}' is registered (known: {known}); run `carepath up` first")
        return rows

    def plan_of(self, session: Session, episode: EpisodeRecord) -> Plan:
        pinned = session.get(PathwayVersionRecord, (episode.pathway_id, episode.pathway_version))
        if pinned is None:  # pragma: no cover - guarded by a foreign key in practice
            raise EpisodeError(f"episode {episode.id}: pathway version {episode.pathway_version} is missing")
        params = tuple(sorted((k, float(v)) for k, v in (episode.params or {}).items()))
        return _plan_from_text(pinned.source_text, f"{episode.pathway_id}@v{episode.pathway_version}", params)

    def plan_for(self, episode_id: str) -> Plan:
        """The compiled plan an episode runs on (its pinned pathway version and parameters)."""
        with Session(self.engine) as session:
            episode = session.get(EpisodeRecord, episode_id)
            if episode is None:
                raise UnknownEpisode(f"no episode '{episode_id}'")
            return self.plan_of(session, episode)

    # ------------------------------------------------------------------------------------------- writes

    def enroll(
        self,
        pathway_id: str,
        person_ref: str,
        *,
        at: datetime | None = None,
        params: dict[str, timedelta] | None = None,
        facts: dict[str, Any] | None = None,
        actor: str = "coordinator",
    ) -> Changes:
        """Start an episode for ``person_ref`` on the newest registered version of ``pathway_id``."""
        now = utc(at) if at else self.clock.now()
        with store.session_scope(self.engine) as session:
            pinned = self.latest_version(session, pathway_id)
            episode = EpisodeRecord(
                id=new_episode_id(),
                person_ref=person_ref,
                pathway_id=pathway_id,
                pathway_version=pinned.version,
                params={k: v.total_seconds() for k, v in (params or {}).items()},
                stage="",
                status="active",
                facts={},
                enrolled_at=now,
                stage_entered_at=now,
                updated_at=now,
                revision=0,
            )
            plan = self.plan_of(session, episode)  # validates params before anything is written
            session.add(episode)
            outcome = enroll(plan, episode.id, now, facts)
            return self._persist(session, plan, episode, outcome, now, actor, event=None)

    def record_event(
        self,
        episode_id: str,
        name: str,
        data: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        actor: str = "coordinator",
    ) -> Changes:
        """Apply an event once: a repeated ``event_id`` changes nothing and says so."""
        now = self.clock.now()
        event = Event(id=event_id or f"evt-{secrets.token_hex(6)}", name=name, data=data or {}, at=now)
        with store.session_scope(self.engine) as session:
            episode = store.lock_episode(session, episode_id)
            plan = self.plan_of(session, episode)
            if not store.mark_event_processed(session, event.id, episode_id, name, now):
                return Changes(episode_id, episode.pathway_id, episode.stage, duplicate=True)
            outcome = apply_event(plan, self._state(session, episode), event, now)
            return self._persist(session, plan, episode, outcome, now, actor, event=event)

    def fire_rung(self, rung_id: str) -> Changes | None:
        """Escalate a due rung exactly once; None if the rung is unknown."""
        now = self.clock.now()
        with store.session_scope(self.engine) as session:
            rung = session.get(RungRecord, rung_id)
            if rung is None:
                return None
            episode = store.lock_episode(session, rung.episode_id)
            plan = self.plan_of(session, episode)
            outcome = fire_rung(plan, self._state(session, episode), rung_id, now)
            return self._persist(session, plan, episode, outcome, now, "carepath", event=None)

    def set_run_ids(self, run_ids: dict[str, str]) -> None:
        """Remember which Prefect run will fire each rung (so a met deadline can cancel it)."""
        if not run_ids:
            return
        with store.session_scope(self.engine) as session:
            for rung_id, run_id in run_ids.items():
                rung = session.get(RungRecord, rung_id)
                if rung is not None and rung.flow_run_id is None:
                    rung.flow_run_id = run_id
                    rung.scheduled_at = self.clock.now()
                    session.add(rung)

    # ------------------------------------------------------------------------------------------- state

    def _state(self, session: Session, episode: EpisodeRecord) -> EpisodeState:
        items = session.exec(
            select(WorkItemRecord).where(WorkItemRecord.episode_id == episode.id, WorkItemRecord.status == "open")
        ).all()
        rungs = session.exec(
            select(RungRecord).where(RungRecord.episode_id == episode.id, RungRecord.status == "pending")
        ).all()
        by_item: dict[str, list[Rung]] = {}
        for r in rungs:
            by_item.setdefault(r.work_item_id, []).append(
                Rung(id=r.id, index=r.index, due_at=utc(r.due_at), role=r.role, status="pending")
            )
        handoffs = session.exec(
            select(HandoffRecord).where(HandoffRecord.episode_id == episode.id, HandoffRecord.closed_at.is_(None))  # type: ignore[union-attr]
        ).all()
        return EpisodeState(
            id=episode.id,
            stage=episode.stage,
            status=episode.status,  # type: ignore[arg-type]
            facts=dict(episode.facts or {}),
            visit=episode.visit,
            stage_entered_at=utc(episode.stage_entered_at),
            items=[
                WorkItem(
                    id=i.id,
                    kind=i.kind,
                    key=i.key,
                    title=i.title,
                    owner=i.owner,
                    opened_at=utc(i.opened_at),
                    due_at=utc(i.due_at),
                    done_on=i.done_on,
                    match=dict(i.match or {}),
                    visit=i.visit,
                    occurrence=i.occurrence,
                    handoff_id=i.handoff_id,
                    consent_purpose=i.consent_purpose,
                    rungs=sorted(by_item.get(i.id, []), key=lambda r: r.index),
                )
                for i in items
            ],
            handoffs=[
                Handoff(
                    id=h.id,
                    transition_index=h.transition_index,
                    program=h.program,
                    role=h.role,
                    mode=h.mode,
                    consent_purpose=h.consent_purpose,
                    visit=h.visit,
                    status=h.status,
                    business_status=h.business_status,
                    opened_at=utc(h.opened_at),
                )
                for h in handoffs
            ],
        )

    def _persist(
        self,
        session: Session,
        plan: Plan,
        episode: EpisodeRecord,
        outcome: Outcome,
        now: datetime,
        actor: str,
        event: Event | None,
    ) -> Changes:
        state = outcome.state
        changes = Changes(episode.id, episode.pathway_id, state.stage, moved=outcome.moved)
        if outcome.moved or not episode.stage:
            self._visit(session, episode, state, now, event)
        episode.stage, episode.status, episode.facts = state.stage, state.status, dict(state.facts)
        episode.visit, episode.stage_entered_at = state.visit, state.stage_entered_at
        episode.updated_at, episode.revision = now, episode.revision + 1
        session.add(episode)
        for h in outcome.handoffs_opened:
            session.add(HandoffRecord(episode_id=episode.id, **h.model_dump()))
        for h in outcome.handoffs_changed:
            row = session.get(HandoffRecord, h.id)
            if row is not None:
                row.status, row.business_status, row.closed_at = h.status, h.business_status, h.closed_at
                session.add(row)
        for item in outcome.opened:
            session.add(WorkItemRecord(episode_id=episode.id, **item.model_dump(exclude={"rungs", "closed_by"})))
            for r in item.rungs:
                session.add(
                    RungRecord(
                        id=r.id,
                        work_item_id=item.id,
                        episode_id=episode.id,
                        index=r.index,
                        due_at=r.due_at,
                        role=r.role,
                    )
                )
                changes.schedule.append(TimerRef(r.id, episode.id, episode.pathway_id, r.due_at, item.title, r.role))
        for item in outcome.closed:
            row = session.get(WorkItemRecord, item.id)
            if row is None:
                continue
            row.status, row.closed_at, row.closed_by = item.status, now, item.closed_by
            session.add(row)
            for rung in session.exec(
                select(RungRecord).where(RungRecord.work_item_id == item.id, RungRecord.status == "pending")
            ):
                rung.status = "cancelled"
                session.add(rung)
                if rung.flow_run_id:
                    changes.cancel_runs.append(rung.flow_run_id)
        for esc in outcome.escalations:
            rung = session.get(RungRecord, esc.rung_id)
            if rung is not None and store.record_escalation_once(session, rung, now) is not None:
                changes.escalations.append((esc.rung_id, esc.role))
        for action, detail in outcome.audit:
            store.audit(session, episode.id, now, actor, action, detail)
        return changes

    def _visit(
        self, session: Session, episode: EpisodeRecord, state: EpisodeState, now: datetime, event: Event | None
    ) -> None:
        if episode.stage:
            open_visit = session.exec(
                select(StageVisitRecord).where(
                    StageVisitRecord.episode_id == episode.id,
                    StageVisitRecord.left_at.is_(None),  # type: ignore[union-attr]
                )
            ).first()
            if open_visit is not None:
                open_visit.left_at = now
                session.add(open_visit)
        session.add(
            StageVisitRecord(
                episode_id=episode.id, stage=state.stage, entered_at=now, entered_by_event=event.id if event else None
            )
        )

    # -------------------------------------------------------------------------------------------- reads

    def episode(self, episode_id: str) -> EpisodeRecord:
        with Session(self.engine) as session:
            row = session.get(EpisodeRecord, episode_id)
            if row is None:
                raise UnknownEpisode(f"no episode '{episode_id}'")
            return row
