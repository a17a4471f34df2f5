"""The episode service: pure semantics (:mod:`engine.episode.rules`) applied to the store in one transaction each.

This is the only place that turns an :class:`~engine.episode.rules.Outcome` into rows. It never talks to Prefect:
every call returns what changed in timers (rungs to schedule, runs to cancel), and the orchestration layer acts
on that *after* the transaction commits. If a process dies in between, the store still holds every pending
rung without a scheduled run, and the sweep schedules or fires it: nothing is lost, and the unique escalation
per rung means nothing is doubled.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from engine import store
from engine.clock import Clock, utc
from engine.episode.domain.consent import Consent
from engine.episode.rules import Event, apply_event, enroll, fire_rung
from engine.errors import EpisodeError, EventRejected, NotFound, PathwayError, UnknownEpisode, quote
from engine.language.loader import load_pathway_text
from engine.language.model import PathwaySpec
from engine.plan.build import compile_plan
from engine.plan.model import Plan
from engine.store import (
    ConsentRecord,
    DisclosureRecord,
    DiscrepancyRecord,
    EpisodeRecord,
    EscalationRecord,
    InboundEventRecord,
    PathwayVersionRecord,
    ProcessedEventRecord,
    RungRecord,
)
from engine.store.mapper import Changes, load_state, save_outcome

__all__ = ["Changes", "EpisodeService", "event_digest", "new_episode_id"]


def event_digest(name: str, data: dict[str, Any]) -> str:
    """What identifies an event's content: its name and payload (an id reused for other content is refused)."""
    return hashlib.sha256(json.dumps([name, data], sort_keys=True, default=str).encode()).hexdigest()


def new_episode_id() -> str:
    """An opaque episode id; it carries nothing about the person."""
    return f"ep-{secrets.token_hex(4)}"


@lru_cache(maxsize=256)
def _plan_from_text(text: str, name: str, params_key: tuple[tuple[str, float], ...]) -> Plan:
    result = load_pathway_text(text, name)
    if not result.ok or result.spec is None:
        raise PathwayError([d for d in result.diagnostics if d.severity == "error"])
    return compile_plan(result.spec, {k: timedelta(seconds=v) for k, v in params_key})


def _refuse_reused_id(seen: ProcessedEventRecord | None, event_id: str, digest: str) -> None:
    if seen is not None and seen.digest not in (None, digest):
        raise EventRejected(
            f"event id {quote(event_id)} was already used for event '{seen.name}' on this episode "
            f"with other content; give this event its own id",
            code="id-reused",
        )


class EpisodeService:
    """Enroll, record events, fire rungs and read episodes; each write is one transaction."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self._pinned: dict[tuple[str, int], str] = {}

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
        found = store.latest_pathway_version(session, pathway_id)
        if found is None:
            known = ", ".join(store.registered_pathway_ids(session)) or "none"
            raise EpisodeError(
                f"no pathway {quote(pathway_id)} is registered (known: {known}); run `carepath up` first"
            )
        return found

    def plan_of(self, session: Session, episode: EpisodeRecord) -> Plan:
        text = self._pinned_text(session, episode.pathway_id, episode.pathway_version)
        if text is None:  # pragma: no cover - guarded by a foreign key in practice
            raise EpisodeError(f"episode {episode.id}: pathway version {episode.pathway_version} is missing")
        params = tuple(sorted((k, float(v)) for k, v in (episode.params or {}).items()))
        return _plan_from_text(text, f"{episode.pathway_id}@v{episode.pathway_version}", params)

    def _pinned_text(self, session: Session, pathway_id: str, version: int) -> str | None:
        """The registered text of a pathway version, read once per process: a version never changes (other content
        under a registered version is refused), and an event read it twice (its check, then its application)."""
        key = (pathway_id, version)
        text = self._pinned.get(key)
        if text is None:
            pinned = session.get(PathwayVersionRecord, key)
            if pinned is None:
                return None
            text = self._pinned[key] = pinned.source_text
        return text

    def version_plan(self, session: Session, pathway_id: str, version: int) -> Plan:
        """The compiled plan of one registered pathway version, without an episode's parameters (what the quality
        measures read a history with)."""
        text = self._pinned_text(session, pathway_id, version)
        if text is None:
            raise EpisodeError(f"pathway {quote(pathway_id)} version {version} is not registered")
        return _plan_from_text(text, f"{pathway_id}@v{version}", ())

    def plan_for(self, episode_id: str) -> Plan:
        """The compiled plan an episode runs on (its pinned pathway version and parameters)."""
        return self.episode_and_plan(episode_id)[1]

    def episode_and_plan(self, episode_id: str) -> tuple[EpisodeRecord, Plan]:
        """The episode as stored now and the compiled plan it runs on, in one read."""
        with Session(self.engine) as session:
            episode = session.get(EpisodeRecord, episode_id)
            if episode is None:
                raise UnknownEpisode(f"no episode {quote(episode_id)}")
            return episode, self.plan_of(session, episode)

    def enrollment_plan(self, pathway_id: str, params: dict[str, timedelta] | None = None) -> Plan:
        """The plan an enrollment on ``pathway_id`` would run on (its newest version, these parameters): read only,
        so a request can be checked before anything is written (an unknown pathway, a parameter out of range)."""
        with Session(self.engine) as session:
            pinned = self.latest_version(session, pathway_id)
            key = tuple(sorted((k, v.total_seconds()) for k, v in (params or {}).items()))
            return _plan_from_text(pinned.source_text, f"{pathway_id}@v{pinned.version}", key)

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
            return save_outcome(session, episode, outcome, now, actor, event=None, claimed_at=self._wall(now))

    def receive_event(
        self,
        episode_id: str,
        name: str,
        data: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        actor: str = "coordinator",
    ) -> str:
        """Store an event with its payload before it is applied; returns the inbound id (all Prefect sees of it)."""
        inbound = InboundEventRecord(
            id=f"in-{secrets.token_hex(6)}",
            episode_id=episode_id,
            name=name,
            data=dict(data or {}),
            event_id=event_id,
            actor=actor,
            received_at=self.clock.now(),
        )
        with store.session_scope(self.engine) as session:
            store.get_episode(session, episode_id)
            session.add(inbound)
        return inbound.id

    def apply_inbound(self, inbound_id: str) -> Changes:
        """Apply a stored event once; a refusal is recorded on it (status ``rejected``) and raised.

        Applying the same inbound event again (a retried run) changes nothing and reports a duplicate.
        """
        try:
            with store.session_scope(self.engine) as session:
                inbound = session.get(InboundEventRecord, inbound_id, populate_existing=True)
                if inbound is None:
                    raise EpisodeError(f"no inbound event '{inbound_id}'")
                episode = store.lock_episode(session, inbound.episode_id)
                if inbound.status == "rejected":
                    raise EventRejected(inbound.detail or "rejected")
                if inbound.status != "received":
                    return Changes(episode.id, episode.pathway_id, episode.stage, episode.status, duplicate=True)
                now = self.clock.now()
                event = Event(
                    id=inbound.event_id or inbound.id, name=inbound.name, data=dict(inbound.data or {}), at=now
                )
                changes = self._apply(session, episode, event, now, inbound.actor)
                inbound.status, inbound.processed_at = ("duplicate" if changes.duplicate else "applied"), now
                session.add(inbound)
                return changes
        except EventRejected as exc:
            with store.session_scope(self.engine) as session:
                inbound = session.get(InboundEventRecord, inbound_id, populate_existing=True)
                if inbound is not None and inbound.status == "received":
                    inbound.status, inbound.detail, inbound.processed_at = "rejected", str(exc), self.clock.now()
                    session.add(inbound)
            raise

    def record_event(
        self,
        episode_id: str,
        name: str,
        data: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        actor: str = "coordinator",
    ) -> Changes:
        """Receive and apply an event in one go: a repeated ``event_id`` changes nothing and says so."""
        return self.apply_inbound(self.receive_event(episode_id, name, data, event_id=event_id, actor=actor))

    def _apply(self, session: Session, episode: EpisodeRecord, event: Event, now: datetime, actor: str) -> Changes:
        plan = self.plan_of(session, episode)
        digest = event_digest(event.name, event.data)
        if not store.mark_event_processed(session, event.id, episode.id, event.name, now, digest=digest):
            _refuse_reused_id(store.processed_event(session, episode.id, event.id), event.id, digest)
            return Changes(episode.id, episode.pathway_id, episode.stage, episode.status, duplicate=True)
        outcome = apply_event(plan, load_state(session, episode), event, now)
        return save_outcome(session, episode, outcome, now, actor, event=event, claimed_at=self._wall(now))

    def check_event_id(self, episode_id: str, event_id: str, name: str, data: dict[str, Any]) -> None:
        """Refuse (read only, before anything is stored) an event id this episode already used for other content;
        the same id with the same content is a duplicate, which changes nothing when applied."""
        with Session(self.engine) as session:
            seen = store.processed_event(session, episode_id, event_id)
        _refuse_reused_id(seen, event_id, event_digest(name, data))

    def fire_rung(self, rung_id: str) -> Changes | None:
        """Escalate a due rung exactly once; None if the rung is unknown."""
        now = self.clock.now()
        with store.session_scope(self.engine) as session:
            rung = session.get(RungRecord, rung_id)
            if rung is None:
                return None
            episode = store.lock_episode(session, rung.episode_id)
            plan = self.plan_of(session, episode)
            outcome = fire_rung(plan, load_state(session, episode), rung_id, now)
            return save_outcome(session, episode, outcome, now, "carepath", event=None, claimed_at=self._wall(now))

    def due_rungs(self, episode_id: str, limit: int = 100) -> list[str]:
        """The episode's pending rungs that are due now (to fire at once rather than wait for their run)."""
        with Session(self.engine) as session:
            return [r.id for r in store.due_pending_rungs(session, episode_id, self.clock.now(), limit)]

    def _wall(self, now: datetime) -> datetime:
        return self.clock.wall_time(now)

    # ------------------------------------------------------------------------------------ safety core

    def add_consent(self, episode_id: str, consent: Consent, *, actor: str = "coordinator") -> None:
        """Record a signed Part 2 consent for the episode's person (then apply the ``consent.recorded`` event)."""
        with store.session_scope(self.engine) as session:
            episode = store.get_episode(session, episode_id)
            mine = consent.model_copy(update={"patient": episode.person_ref})  # always the episode's person
            store.add_consent(session, ConsentRecord.from_domain(mine, self.clock.now()))
            store.audit(session, episode_id, self.clock.now(), actor, "consent.recorded", {"consent": consent.id})

    def consent_known(self, consent_id: str) -> bool:
        """Whether a consent with this id is recorded (read only: a request is checked before it is sent)."""
        with Session(self.engine) as session:
            return session.get(ConsentRecord, consent_id) is not None

    def revoke_consent(self, consent_id: str, *, written: bool, actor: str = "coordinator") -> list[str]:
        """Revoke in writing; returns the person's active episodes (each then applies ``consent.revoked``)."""
        now = self.clock.now()
        with store.session_scope(self.engine) as session:
            record = store.revoke_consent(session, consent_id, now, written)
            episodes = [e.id for e in store.list_episodes(session, person_ref=record.person_ref, status="active")]
            for episode_id in episodes:
                store.audit(session, episode_id, now, actor, "consent.revoked", {"consent": consent_id})
        return episodes

    def acknowledge(self, escalation_id: int, by: str, actor: str | None = None) -> tuple[str, int, list[str]]:
        """Acknowledge an escalation for staff member ``by`` (recorded by ``actor``, when another: an API token's
        label): its later rungs never fire. Returns its episode, how many rungs were stopped, and their Prefect runs
        to cancel."""
        now = self.clock.now()
        with store.session_scope(self.engine) as session:
            escalation = session.get(EscalationRecord, escalation_id)
            if escalation is None:
                raise NotFound(f"no escalation {escalation_id}")
            # the episode first, as every writer of its rows takes it: stopping rungs, then waiting at commit for
            # the episode a firing held while it waited for those rungs, was a deadlock (seen under load)
            store.lock_episode(session, escalation.episode_id)
            if not store.acknowledge_escalation(session, escalation_id, by, now):
                raise EpisodeError(f"escalation {escalation_id} was already acknowledged")
            fired = session.get(RungRecord, escalation.rung_id)
            runs, stopped = [], 0
            for rung in store.cancel_pending_rungs(session, escalation.work_item_id):
                if fired is None or rung.index > fired.index:
                    stopped += 1
                    runs += [rung.flow_run_id] if rung.flow_run_id else []
            detail = {"id": escalation_id, "by": by}
            store.audit(session, escalation.episode_id, now, actor or by, "escalation.acknowledged", detail)
            return escalation.episode_id, stopped, runs

    def mark_intentional(self, discrepancy_id: str, reason: str, by: str, actor: str | None = None) -> None:
        """A clinician (``by``) documents a medication discrepancy as intentional (it stops counting as an error);
        ``actor`` is who recorded it, when not the clinician (an API token's label)."""
        now = self.clock.now()
        with store.session_scope(self.engine) as session:
            found = session.get(DiscrepancyRecord, discrepancy_id)
            if found is not None:  # the episode first, as every writer of its rows takes it (see acknowledge)
                store.lock_episode(session, found.episode_id)
            row = store.mark_discrepancy_intentional(session, discrepancy_id, reason, by, now)
            detail = {"id": discrepancy_id, "by": by}
            store.audit(session, row.episode_id, now, actor or by, "discrepancy.intentional", detail, reason)

    def disclosures(self, episode_id: str, years: int = 3) -> list[DisclosureRecord]:
        """The accounting of disclosures of the episode's person over the past ``years`` (section 2.25)."""
        now = self.clock.now()
        with Session(self.engine) as session:
            episode = store.get_episode(session, episode_id)
            since = now.replace(year=now.year - years)
            return store.disclosures_for(session, person_ref=episode.person_ref, since=since)

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

    # -------------------------------------------------------------------------------------------- reads

    def episode(self, episode_id: str) -> EpisodeRecord:
        with Session(self.engine) as session:
            row = session.get(EpisodeRecord, episode_id)
            if row is None:
                raise UnknownEpisode(f"no episode {quote(episode_id)}")
            return row
