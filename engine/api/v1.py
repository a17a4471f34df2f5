"""``/api/v1``: every CLI use case as an endpoint. Handlers only translate: a body to a use case of
:mod:`engine.app`, its result to JSON; who may do what is :mod:`engine.app.access`'s, every refusal a problem.

Writes take an ``Idempotency-Key`` (:mod:`engine.api.idempotency`) and record the token's label as the actor.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from engine.api import shapes
from engine.api.bodies import (
    AcknowledgeIn,
    AuthorizationIn,
    ConsentIn,
    EnrollIn,
    EventIn,
    IntentionalIn,
    MedicationsIn,
    MoveIn,
    RevokeIn,
)
from engine.api.idempotency import IdempotencyKey, once
from engine.api.security import Caller, carepath_app
from engine.app import acknowledge, enroll, reads, record_event, safety
from engine.app.access import require, sees_person_ids
from engine.app.network import handoff, handoffs, move_handoff, visible_episode
from engine.app.views import discrepancy_rows
from engine.language.builtins import AUTHORIZATION_EVENTS

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
_AUTH_EVENTS = {move: event for event, move in AUTHORIZATION_EVENTS.items()}


# ------------------------------------------------------------------------------------------------ episodes


@router.post("/episodes", status_code=201, tags=["episodes"], summary="Enroll a person on a pathway")
def enroll_person(body: EnrollIn, request: Request, who: Caller, key: IdempotencyKey = None) -> JSONResponse:
    app = carepath_app(request)
    require(who, "enroll")

    def run() -> tuple[int, Any]:
        episode_id = enroll(
            app, body.pathway, body.person, at=body.at, params=body.params, facts=body.facts, actor=who.label
        )
        episode = app.service.episode(episode_id)
        return 201, {
            "episode_id": episode_id,
            "pathway": episode.pathway_id,
            "pathway_version": episode.pathway_version,
            "stage": episode.stage,
        }

    return once(request, who, key, body.model_dump(), run)


@router.get("/episodes", tags=["episodes"], summary="The caseload: one row per episode")
def caseload(
    request: Request,
    who: Caller,
    pathway: Annotated[str | None, Query(max_length=200)] = None,
    stage: Annotated[str | None, Query(max_length=200)] = None,
    overdue: bool = False,
) -> list[dict[str, Any]]:
    require(who, "caseload")
    rows = reads.episodes(carepath_app(request), pathway=pathway, stage=stage, overdue=overdue)
    if not sees_person_ids(who):
        rows = [{k: v for k, v in row.items() if k != "person"} for row in rows]
    return rows


@router.get("/episodes/{episode_id}", tags=["episodes"], summary="An episode's status")
def episode_status(episode_id: str, request: Request, who: Caller) -> dict[str, Any]:
    app = carepath_app(request)
    visible_episode(app, who, "status", episode_id)
    return shapes.episode_status(reads.status(app, episode_id), who, app.clock.now())


@router.post("/episodes/{episode_id}/events", tags=["episodes"], summary="Record what happened (applied once)")
def post_event(
    episode_id: str, body: EventIn, request: Request, who: Caller, key: IdempotencyKey = None
) -> JSONResponse:
    app = carepath_app(request)
    visible_episode(app, who, "event", episode_id)

    def run() -> tuple[int, Any]:
        result = record_event(app, episode_id, body.name, body.data, event_id=key, actor=who.label)
        return 200, shapes.event_result(result)

    return once(request, who, key, body.model_dump(), run)


@router.post("/episodes/{episode_id}/authorizations", tags=["episodes"], summary="Record an insurance authorization")
def post_authorization(
    episode_id: str, body: AuthorizationIn, request: Request, who: Caller, key: IdempotencyKey = None
) -> JSONResponse:
    app = carepath_app(request)
    visible_episode(app, who, "authorization", episode_id)
    data = {k: v for k, v in {"reason": body.reason, "to": body.to, "handoff": body.handoff}.items() if v}

    def run() -> tuple[int, Any]:
        event = _AUTH_EVENTS[body.action]
        return 200, shapes.event_result(record_event(app, episode_id, event, data, event_id=key, actor=who.label))

    return once(request, who, key, body.model_dump(), run)


# ------------------------------------------------------------------------------------------------ handoffs


@router.get("/handoffs", tags=["handoffs"], summary="Handoffs (a receiver: those addressed to its program)")
def list_handoffs(
    request: Request,
    who: Caller,
    status: Annotated[list[str] | None, Query(max_length=10)] = None,
    episode: Annotated[str | None, Query(max_length=200)] = None,
) -> list[dict[str, Any]]:
    found = handoffs(carepath_app(request), who, statuses=status or (), episode_id=episode)
    return [shapes.handoff(v, who) for v in found]


@router.get("/handoffs/{handoff_id:path}", tags=["handoffs"], summary="One handoff, with the moves possible now")
def get_handoff(handoff_id: str, request: Request, who: Caller) -> dict[str, Any]:
    return shapes.handoff(handoff(carepath_app(request), who, handoff_id), who)


@router.post("/handoffs/{handoff_id:path}/moves", tags=["handoffs"], summary="Move a handoff along its closed loop")
def post_move(handoff_id: str, body: MoveIn, request: Request, who: Caller, key: IdempotencyKey = None) -> JSONResponse:
    app = carepath_app(request)
    require(who, "move-handoff")

    def run() -> tuple[int, Any]:
        result = move_handoff(
            app,
            who,
            handoff_id,
            body.action,
            party=body.party,
            reason=body.reason,
            appointment_at=body.appointment_at,
            outcome=body.outcome,
            event_id=key,
        )
        return 200, {**shapes.event_result(result), "handoff": shapes.handoff(handoff(app, who, handoff_id), who)}

    return once(request, who, key, body.model_dump(), run)


# ---------------------------------------------------------------------------------------------- consents


@router.post("/episodes/{episode_id}/consents", status_code=201, tags=["consent"], summary="Record a Part 2 consent")
def post_consent(
    episode_id: str, body: ConsentIn, request: Request, who: Caller, key: IdempotencyKey = None
) -> JSONResponse:
    app = carepath_app(request)
    visible_episode(app, who, "consent", episode_id)

    def run() -> tuple[int, Any]:
        consent = safety.consent_from_form(app, episode_id, body.model_dump())
        return 201, shapes.event_result(safety.record_consent(app, episode_id, consent, actor=who.label))

    return once(request, who, key, body.model_dump(), run)


@router.post("/consents/{consent_id}/revocation", tags=["consent"], summary="Revoke a consent (in writing)")
def post_revocation(
    consent_id: str, body: RevokeIn, request: Request, who: Caller, key: IdempotencyKey = None
) -> JSONResponse:
    app = carepath_app(request)
    require(who, "revoke")

    def run() -> tuple[int, Any]:
        results = safety.revoke_consent(app, consent_id, written=body.written, actor=who.label)
        return 200, {"consent": consent_id, "episodes": [shapes.event_result(r) for r in results]}

    return once(request, who, key, body.model_dump(), run)


@router.get("/episodes/{episode_id}/disclosures", tags=["consent"], summary="The accounting of disclosures")
def get_disclosures(
    episode_id: str, request: Request, who: Caller, years: Annotated[int, Query(ge=1, le=6)] = 3
) -> list[dict[str, Any]]:
    app = carepath_app(request)
    visible_episode(app, who, "disclosures", episode_id)
    return [shapes.disclosure(d) for d in safety.disclosures(app, episode_id, years)]


# ------------------------------------------------------------------------------------------- medications


@router.post("/episodes/{episode_id}/medications", tags=["medications"], summary="Record a medication list")
def post_medications(
    episode_id: str, body: MedicationsIn, request: Request, who: Caller, key: IdempotencyKey = None
) -> JSONResponse:
    app = carepath_app(request)
    visible_episode(app, who, "medications", episode_id)

    def run() -> tuple[int, Any]:
        result = safety.record_medications(
            app, episode_id, body.side, list(body.medications), actor=who.label, event_id=key
        )
        return 200, {**shapes.event_result(result), "discrepancies": discrepancy_rows(app.engine, episode_id)}

    return once(request, who, key, body.model_dump(), run)


@router.get("/episodes/{episode_id}/discrepancies", tags=["medications"], summary="Medication findings")
def get_discrepancies(episode_id: str, request: Request, who: Caller) -> list[dict[str, Any]]:
    app = carepath_app(request)
    visible_episode(app, who, "discrepancies", episode_id)
    return discrepancy_rows(app.engine, episode_id)


@router.post("/discrepancies/{discrepancy_id:path}/intentional", tags=["medications"], summary="Mark intentional")
def post_intentional(
    discrepancy_id: str, body: IntentionalIn, request: Request, who: Caller, key: IdempotencyKey = None
) -> JSONResponse:
    app = carepath_app(request)
    require(who, "intentional")

    def run() -> tuple[int, Any]:
        safety.mark_intentional(app, discrepancy_id, body.reason, body.by, actor=who.label)
        return 200, {"discrepancy": discrepancy_id, "status": "intentional", "reason": body.reason}

    return once(request, who, key, body.model_dump(), run)


# ------------------------------------------------------------------------------------------- escalations


@router.post("/escalations/{escalation_id}/acknowledgement", tags=["escalations"], summary="Acknowledge")
def post_acknowledgement(
    escalation_id: int, body: AcknowledgeIn, request: Request, who: Caller, key: IdempotencyKey = None
) -> JSONResponse:
    app = carepath_app(request)
    require(who, "acknowledge")

    def run() -> tuple[int, Any]:
        stopped = acknowledge(app, escalation_id, body.by, actor=who.label)
        return 200, {"escalation": escalation_id, "acknowledged": True, "later_rungs_stopped": stopped}

    return once(request, who, key, body.model_dump(), run)
