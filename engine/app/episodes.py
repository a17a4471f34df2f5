"""The use cases of an episode's life: enroll, record what happened, fire a deadline, acknowledge an escalation.

Each face (CLI, flows, API, demo) calls these, never the service or the store directly, so every change ends in
the one follow-up (:func:`engine.app.followup.follow_up`). A coordinator's request goes through the dispatcher
(in production a Prefect flow run operators can watch); the flow body is :func:`process_event` /
:func:`follow_up_enrollment`, which the inline dispatcher calls directly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from engine import store
from engine.app import inputs
from engine.app.context import App, bound
from engine.app.followup import FollowUp, follow_up, release_runs
from engine.app.publish import publish_open_escalations, publish_program_overview
from engine.errors import CarepathError, EpisodeError, EventRejected, quote
from engine.store import InboundEventRecord
from engine.store.mapper import Changes

__all__ = [
    "EventResult",
    "acknowledge",
    "enroll",
    "fire",
    "follow_up_enrollment",
    "process_event",
    "record_event",
]

logger = logging.getLogger("carepath.episodes")


@dataclass(frozen=True)
class EventResult:
    """What recording an event did: ``status`` is ``applied`` or ``duplicate``; where the episode is now."""

    episode_id: str
    event: str
    status: str
    stage: str
    episode_status: str
    moved: tuple[str, str] | None = None


def enroll(
    app: App,
    pathway_id: str,
    person_ref: str,
    *,
    at: datetime | str | None = None,
    params: Mapping[str, timedelta | str] | None = None,
    facts: Mapping[str, Any] | None = None,
    actor: str = "coordinator",
) -> str:
    """Start an episode and follow it up (its timers scheduled, its artifact published); returns its id.

    Checked first, changing nothing when refused (:mod:`engine.app.inputs`): the ids, ``at`` (ISO text or a
    datetime) within the enrollment window, each parameter, and each fact against the pathway's declarations
    (text such as ``"14"`` becomes the declared type).
    """
    now = app.clock.now()
    inputs.check_id("pathway id", pathway_id)
    inputs.check_id("person id", person_ref)
    when = inputs.check_time(inputs.ENROLLMENT, at, now) if at is not None else None
    durations = inputs.check_params(params or {})
    plan = app.service.enrollment_plan(pathway_id, durations)  # an unknown pathway, a parameter out of its range
    known = inputs.check_facts(plan.pathway_id, plan.facts, facts or {}, now)
    app.dispatcher.ready()
    changes = app.service.enroll(pathway_id, person_ref, at=when, params=durations, facts=known, actor=actor)
    episode = app.service.episode(changes.episode_id)
    with bound(app):
        app.dispatcher.enroll(episode.pathway_id, episode.pathway_version, episode.id)
    return episode.id


def follow_up_enrollment(app: App, episode_id: str) -> FollowUp:
    """The body of an enrollment's run: schedule what the new episode opened, publish it."""
    return follow_up(app, episode_id, None)


def record_event(
    app: App,
    episode_id: str,
    name: str,
    data: dict[str, Any] | None = None,
    *,
    event_id: str | None = None,
    actor: str = "coordinator",
) -> EventResult:
    """Record an event: stored with its payload first, then applied and followed up by the dispatcher.

    Checked first, changing nothing when refused: the ids, the event and its payload against the pathway's
    declarations (:func:`engine.app.inputs.check_payload`; values become their declared type), and an event id
    already used for other content. Raises :class:`~engine.errors.EventRejected` (nothing changed) when the pathway
    does not allow the event now.
    """
    inputs.check_id("episode id", episode_id)
    if event_id is not None:
        inputs.check_id("event id", event_id)
    episode = app.service.episode(episode_id)
    plan = app.service.plan_for(episode_id)
    payload = inputs.check_payload(plan.pathway_id, plan.events, name, data or {}, app.clock.now())
    if event_id is not None:
        app.service.check_event_id(episode_id, event_id, name, payload)
    app.dispatcher.ready()  # before anything is stored: a request Prefect cannot take changes nothing
    inbound_id = app.service.receive_event(episode_id, name, payload, event_id=event_id, actor=actor)
    with bound(app):
        app.dispatcher.event(episode.pathway_id, episode.pathway_version, episode_id, name, inbound_id)
    with Session(app.engine) as session:
        inbound = session.get(InboundEventRecord, inbound_id)
        after = store.get_episode(session, episode_id)
    assert inbound is not None
    if inbound.status == "rejected":
        raise EventRejected(inbound.detail or f"event {quote(name)} was refused")
    if inbound.status == "received":  # the run failed before applying it: the sweep applies it later
        raise EpisodeError(f"event {quote(name)} was received but not applied yet; it will be (see the run's log)")
    moved = (episode.stage, after.stage) if after.stage != episode.stage else None
    return EventResult(episode_id, name, inbound.status, after.stage, after.status, moved)


def process_event(app: App, inbound_id: str) -> tuple[Changes | None, FollowUp | None, str | None]:
    """The body of an event's run: apply the stored event, then follow up. Returns (changes, follow-up, refusal):
    a refused event returns its ``code`` as refusal and changes nothing."""
    try:
        changes = app.service.apply_inbound(inbound_id)
    except EventRejected as exc:
        return None, None, exc.code
    return changes, follow_up(app, changes.episode_id, changes), None


def fire(app: App, rung_id: str) -> tuple[Changes, FollowUp] | None:
    """The body of a deadline run: escalate the rung if still due and unmet (at most once), then follow up.

    None when the store does not know the rung (another store's run, or a deleted episode).
    """
    changes = app.service.fire_rung(rung_id)
    if changes is None:
        return None
    return changes, follow_up(app, changes.episode_id, changes)


def acknowledge(app: App, escalation_id: int, by: str, *, actor: str | None = None) -> int:
    """Someone (``by``) took an escalation on: its later rungs never fire. Returns how many later rungs were
    stopped. ``actor`` is who recorded it, when not ``by`` (an API token's label)."""
    inputs.check_escalation(escalation_id)
    inputs.check_id("staff id", by)
    stopped, runs = app.service.acknowledge(escalation_id, by, actor)
    try:  # best effort: a later rung's run finds its rung cancelled and does nothing
        release_runs(app, runs)
        publish_open_escalations(app)
        publish_program_overview(app)
    except CarepathError as exc:
        logger.warning("escalation %s acknowledged; Prefect not updated: %s", escalation_id, exc)
    return stopped
