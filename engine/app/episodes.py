"""The use cases of an episode's life: enroll, record what happened, fire a deadline, acknowledge an escalation.

Each face (CLI, flows, API, demo) calls these, never the service or the store directly, so every change ends in
the one follow-up (:func:`engine.app.followup.follow_up`). A coordinator's request is answered from the store: the
change is committed in the request, and its follow-up goes through the dispatcher (in production a Prefect flow run
operators can watch, which a long-lived process such as the API runs after answering); the flow body is
:func:`process_event` / :func:`follow_up_enrollment`, which the inline dispatcher calls directly. A process that
dies between the two leaves the follow-up to the sweep (rungs without a run, undelivered escalations, runs no
rung needs), as after any crash between a commit and Prefect.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.app import inputs
from engine.app.context import App, bound
from engine.app.followup import FollowUp, batched, follow_up, release_runs
from engine.app.publish import publish_open_escalations, publish_program_overview
from engine.errors import CarepathError, EpisodeError, EventRejected, quote
from engine.store import EpisodeRecord
from engine.store.mapper import Changes

__all__ = [
    "EventResult",
    "FollowedRequest",
    "acknowledge",
    "acknowledgement_request",
    "enroll",
    "fire",
    "follow_up_acknowledgement",
    "follow_up_enrollment",
    "follow_up_requests",
    "process_event",
    "record_event",
]

logger = logging.getLogger("carepath.episodes")

#: Events applied (or refused) in a request, by inbound id, until their follow-up in this process takes what they
#: changed (the runs to cancel, the escalations to deliver; a refusal's code). Bounded: a follow-up that never comes
#: (the process died, the dispatch failed) is the sweep's, which finds the same work in the store.
_APPLIED: OrderedDict[str, Changes | EventRejected] = OrderedDict()
_APPLIED_KEPT = 10_000
_APPLIED_LOCK = threading.Lock()


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
    _dispatch(app, episode.id, lambda: app.dispatcher.enroll(episode.pathway_id, episode.pathway_version, episode.id))
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
    """Record an event: stored with its payload first, applied in the request (what the answer says), then
    followed up by the dispatcher (which may answer first and follow up after, see the module docstring).

    Checked first, changing nothing when refused: the ids, the event and its payload against the pathway's
    declarations (:func:`engine.app.inputs.check_payload`; values become their declared type), and an event id
    already used for other content. Raises :class:`~engine.errors.EventRejected` (nothing changed) when the pathway
    does not allow the event now.
    """
    inputs.check_id("episode id", episode_id)
    if event_id is not None:
        inputs.check_id("event id", event_id)
    episode, plan = app.service.episode_and_plan(episode_id)
    payload = inputs.check_payload(plan.pathway_id, plan.events, name, data or {}, app.clock.now())
    if event_id is not None:
        app.service.check_event_id(episode_id, event_id, name, payload)
    app.dispatcher.ready()  # before anything is stored: a request Prefect cannot take changes nothing
    inbound_id = app.service.receive_event(episode_id, name, payload, event_id=event_id, actor=actor)
    try:
        changes = app.service.apply_inbound(inbound_id)
    except EventRejected as exc:
        _hand_over(inbound_id, exc)
        _follow_up_event(app, episode, name, inbound_id)  # operators see the refused event's run
        raise
    except CarepathError:
        raise
    except Exception as exc:  # the store failed under it: the event is kept, the sweep applies it
        logger.warning("event %s stored, not applied yet (the sweep will): %s", inbound_id, type(exc).__name__)
        raise EpisodeError(f"event {quote(name)} was received but not applied yet; it will be") from exc
    _hand_over(inbound_id, changes)
    _follow_up_event(app, episode, name, inbound_id)
    moved = (episode.stage, changes.stage) if changes.stage != episode.stage else None
    status = "duplicate" if changes.duplicate else "applied"
    return EventResult(episode_id, name, status, changes.stage, changes.status, moved)


def _hand_over(inbound_id: str, outcome: Changes | EventRejected) -> None:
    with _APPLIED_LOCK:
        _APPLIED[inbound_id] = outcome
        while len(_APPLIED) > _APPLIED_KEPT:
            _APPLIED.popitem(last=False)


def _follow_up_event(app: App, episode: EpisodeRecord, name: str, inbound_id: str) -> None:
    _dispatch(
        app,
        inbound_id,
        lambda: app.dispatcher.event(episode.pathway_id, episode.pathway_version, episode.id, name, inbound_id),
    )


def _dispatch(app: App, what: str, call: Callable[[], None]) -> None:
    """Hand a committed change's follow-up to the dispatcher. A failure there is logged, not raised: the change
    is in the store and the coordinator's answer stands (asked again, they would enroll twice); the sweep finds
    the follow-up's work in the store."""
    try:
        with bound(app):
            call()
    except CarepathError as exc:
        logger.warning("%s committed; its follow-up is left to the sweep: %s", what, exc)


def process_event(app: App, inbound_id: str) -> tuple[Changes | None, FollowUp | None, str | None]:
    """The body of an event's run: apply the stored event, then follow up. Returns (changes, follow-up, refusal):
    a refused event returns its ``code`` as refusal and changes nothing."""
    with _APPLIED_LOCK:
        applied = _APPLIED.pop(inbound_id, None)
    try:
        if isinstance(applied, EventRejected):
            raise applied
        changes = applied or app.service.apply_inbound(inbound_id)
    except EventRejected as exc:
        return None, None, exc.code
    return changes, follow_up(app, changes.episode_id, changes), None


@dataclass(frozen=True)
class FollowedRequest:
    """One request of :func:`follow_up_requests` and what its follow-up did: ``event`` is the event's name (an
    acknowledgement's escalation id); ``refused`` is a refused event's code; ``changes`` is None but for an event
    applied."""

    kind: str
    episode_id: str
    event: str
    changes: Changes | None
    done: FollowUp | None
    refused: str | None = None


def follow_up_requests(app: App, requests: Sequence[Mapping[str, str]]) -> list[FollowedRequest]:
    """The body of a batch of requests' run (``kind`` ``enroll`` with ``episode_id``; ``event`` with ``episode_id``,
    ``event``, ``inbound_id``; ``acknowledge`` with ``escalation`` and ``run_ids``, comma-separated): each followed
    up as its own run would, their timers scheduled together at the end (one Prefect call per pathway and minute)
    and the program's artifacts published once."""
    out: list[FollowedRequest] = []
    with batched(app):
        for request in requests:
            episode_id = request.get("episode_id", "")
            if request["kind"] == "acknowledge":
                runs = [run for run in request.get("run_ids", "").split(",") if run]
                follow_up_acknowledgement(app, runs)
                out.append(FollowedRequest("acknowledge", episode_id, request["escalation"], None, None))
                continue
            if request["kind"] == "enroll":
                out.append(FollowedRequest("enroll", episode_id, "", None, follow_up_enrollment(app, episode_id)))
                continue
            changes, done, refused = process_event(app, request["inbound_id"])
            out.append(FollowedRequest("event", episode_id, request["event"], changes, done, refused))
    return out


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
    stopped. ``actor`` is who recorded it, when not ``by`` (an API token's label). Answered from the store: the
    stopped rungs' runs are released and the tables republished by the dispatcher (after the answer, for a deferring
    one); a later rung's run that starts meanwhile finds its rung cancelled and does nothing."""
    inputs.check_escalation(escalation_id)
    inputs.check_id("staff id", by)
    episode_id, stopped, runs = app.service.acknowledge(escalation_id, by, actor)
    _dispatch(app, f"escalation {escalation_id}", lambda: app.dispatcher.acknowledged(episode_id, escalation_id, runs))
    return stopped


def acknowledgement_request(episode_id: str, escalation_id: int, run_ids: Sequence[str]) -> dict[str, str]:
    """An acknowledgement as a request of :func:`follow_up_requests` (text only: it is a flow run's parameter)."""
    return {
        "kind": "acknowledge",
        "episode_id": episode_id,
        "escalation": str(escalation_id),
        "run_ids": ",".join(run_ids),
    }


def follow_up_acknowledgement(app: App, run_ids: Sequence[str]) -> int:
    """The follow-up of an acknowledgement: release the runs of the rungs it stopped (those no other rung needs)
    and republish the operators' tables; returns how many runs were cancelled. Best effort: the reconciler cancels
    a run no rung needs, and the next change republishes."""
    try:
        released = release_runs(app, list(run_ids))
        publish_open_escalations(app)
        publish_program_overview(app)
    except CarepathError as exc:
        logger.warning("an acknowledgement's runs or tables not updated in Prefect: %s", exc)
        return 0
    return released
