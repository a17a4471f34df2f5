"""``/fhir/R4``: the receiving programs' face. A ``Task`` per handoff, searched by owner and status and moved by
``PATCH`` (JSON Patch) or ``PUT`` of its status, business status, status reason and output; the episode's record
read-only (``CarePlan`` and ``$everything``, ``ServiceRequest``, ``Consent``, ``MedicationStatement``,
``DetectedIssue``, ``Patient``, ``Organization``).

A Task change becomes the receiver's move (:func:`engine.fhir.move_from_task_change`) and goes through the same
use case as ``carepath handoff`` (:func:`engine.app.network.move_handoff`): the same rules, the same refusals (409
``OperationOutcome`` with the one-line reason). The mapping is :mod:`engine.fhir`'s; scope is
:mod:`engine.app.access`'s.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from engine import fhir
from engine.api.idempotency import IdempotencyKey, once
from engine.api.security import Caller, carepath_app
from engine.app.access import Principal, require
from engine.app.context import App
from engine.app.network import (
    EpisodeRecordSet,
    HandoffView,
    episode_record_set,
    handoff,
    handoffs,
    move_handoff,
    patient_person,
    visible_consent,
)
from engine.errors import NotFound, quote

__all__ = ["everything", "router"]

router = APIRouter(prefix="/fhir/R4", tags=["FHIR R4"])
_MEDIA = "application/fhir+json"


def _fhir(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status, media_type=_MEDIA)


def _handoff_id(task_id: str) -> str:
    found = fhir.source_id(task_id)
    if found is None:
        raise NotFound(f"no Task {quote(task_id)}")
    return found


def _task(app: App, view: HandoffView) -> dict[str, Any]:
    h = view.handoff
    return fhir.task(h, h.episode_id, view.patient_id, view.deadlines, now=app.clock.now())


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


# ----------------------------------------------------------------------------------------------- metadata


@router.get("/metadata", summary="CapabilityStatement (no token needed)")
def metadata(request: Request) -> JSONResponse:
    return _fhir(fhir.capability_statement(str(request.base_url).rstrip("/") + "/fhir/R4"))


# ---------------------------------------------------------------------------------------------------- Task


@router.get("/Task", summary="Search Tasks: a receiver sees those it owns")
def search_tasks(
    request: Request,
    who: Caller,
    owner: Annotated[str | None, Query(max_length=300, description="Organization/<id> or <id>")] = None,
    status: Annotated[str | None, Query(max_length=300, description="task statuses, comma-separated")] = None,
) -> JSONResponse:
    app = carepath_app(request)
    statuses = [s for s in (status or "").split(",") if s]
    wanted = owner.removeprefix("Organization/") if owner else None
    found = [
        v for v in handoffs(app, who, statuses=statuses) if wanted is None or fhir.slug(v.handoff.program) == wanted
    ]
    return _fhir(_searchset([_task(app, v) for v in found]))


@router.get("/Task/{task_id}", summary="One Task")
def read_task(task_id: str, request: Request, who: Caller) -> JSONResponse:
    app = carepath_app(request)
    return _fhir(_task(app, handoff(app, who, _handoff_id(task_id))))


def _change_task(
    request: Request, who: Principal, task_id: str, key: str | None, body: Any, changed_from: Any
) -> JSONResponse:
    """Apply a receiver's change of a Task: ``changed_from(current)`` is the Task it asks for."""
    app = carepath_app(request)
    require(who, "move-handoff")

    def run() -> tuple[int, Any]:
        handoff_id = _handoff_id(task_id)
        current = _task(app, handoff(app, who, handoff_id))
        wanted = fhir.move_from_task_change(current, changed_from(current))
        move_handoff(
            app,
            who,
            handoff_id,
            wanted.action,
            party="receiver",
            reason=wanted.reason,
            appointment_at=wanted.appointment_at,
            outcome=wanted.outcome,
            event_id=key,
        )
        return 200, _task(app, handoff(app, who, handoff_id))

    return once(request, who, key, body, run)


@router.patch("/Task/{task_id}", summary="Move a Task by JSON Patch of status, businessStatus, statusReason, output")
def patch_task(
    task_id: str,
    request: Request,
    who: Caller,
    patch: Annotated[list[dict[str, Any]], Body(max_length=50, media_type="application/json-patch+json")],
    key: IdempotencyKey = None,
) -> JSONResponse:
    return _change_task(request, who, task_id, key, patch, lambda current: fhir.apply_json_patch(current, patch))


@router.put("/Task/{task_id}", summary="Move a Task by sending it back with a new status / businessStatus")
def put_task(
    task_id: str,
    request: Request,
    who: Caller,
    resource: Annotated[dict[str, Any], Body(media_type="application/fhir+json")],
    key: IdempotencyKey = None,
) -> JSONResponse:
    return _change_task(request, who, task_id, key, resource, lambda _current: resource)


@router.get("/ServiceRequest/{request_id}", summary="What a Task asks of the receiving program")
def read_service_request(request_id: str, request: Request, who: Caller) -> JSONResponse:
    app = carepath_app(request)
    view = handoff(app, who, _handoff_id(request_id))
    return _fhir(fhir.service_request(view.handoff, view.patient_id))


@router.get("/Organization/{organization_id}", summary="A program, by the id Tasks reference")
def read_organization(organization_id: str, request: Request, who: Caller) -> JSONResponse:
    programs = {fhir.slug(v.handoff.program): v.handoff.program for v in handoffs(carepath_app(request), who)}
    programs.setdefault(fhir.slug(fhir.DEFAULT_REQUESTER), fhir.DEFAULT_REQUESTER)
    if organization_id not in programs:
        raise NotFound(f"no Organization {quote(organization_id)}")
    return _fhir(fhir.organization(programs[organization_id]))


# ------------------------------------------------------------------------------------------------ episode


def _bundle_input(record: EpisodeRecordSet, app: App) -> fhir.EpisodeBundleInput:
    return fhir.EpisodeBundleInput(
        status=record.status,
        plan=record.plan,
        patient_id=record.patient_id,
        now=app.clock.now(),
        program_identifier=record.person_ref,
        consents=record.consents,
        medication_lists=record.medication_lists,
        discrepancies=record.discrepancies,
        visits=record.visits,
    )


@router.get("/CarePlan/{episode_id}", summary="An episode: the pathway's stages as activities")
def read_care_plan(episode_id: str, request: Request, who: Caller) -> JSONResponse:
    app = carepath_app(request)
    record = episode_record_set(app, who, "care-plan", episode_id)
    return _fhir(fhir.care_plan(record.status, record.plan, record.patient_id, record.visits))


def everything(app: App, who: Principal, episode_id: str) -> dict[str, Any]:
    """The episode as a collection ``Bundle``, as ``who`` may see it (``$everything`` and ``carepath fhir export``)."""
    return fhir.bundle_everything(_bundle_input(episode_record_set(app, who, "care-plan", episode_id), app))


@router.get("/CarePlan/{episode_id}/$everything", summary="The episode as a Bundle (like `carepath fhir export`)")
def care_plan_everything(episode_id: str, request: Request, who: Caller) -> JSONResponse:
    return _fhir(everything(carepath_app(request), who, episode_id))


@router.get("/Consent/{consent_id}", summary="A 42 CFR Part 2 consent")
def read_consent(consent_id: str, request: Request, who: Caller) -> JSONResponse:
    app = carepath_app(request)
    record, patient_id, active = visible_consent(app, who, consent_id)
    return _fhir(fhir.consent(record, patient_id, now=app.clock.now(), episode_active=active))


def _patient_records(app: App, who: Principal, reference: str) -> list[EpisodeRecordSet]:
    _, episode_ids = patient_person(app, who, "care-plan", reference.removeprefix("Patient/"))
    return [episode_record_set(app, who, "care-plan", e) for e in episode_ids]


@router.get("/MedicationStatement", summary="Medication lists of a patient (subject=Patient/<id>)")
def search_medication_statements(
    request: Request, who: Caller, subject: Annotated[str, Query(max_length=300)]
) -> JSONResponse:
    app = carepath_app(request)
    resources = [
        statement
        for record in _patient_records(app, who, subject)
        for listed in record.medication_lists
        for statement in fhir.medication_statements(listed, record.patient_id)
    ]
    return _fhir(_searchset(resources))


@router.get("/DetectedIssue", summary="Reconciliation findings of a patient (patient=Patient/<id>)")
def search_detected_issues(
    request: Request, who: Caller, patient: Annotated[str, Query(max_length=300)]
) -> JSONResponse:
    app = carepath_app(request)
    resources = [
        issue
        for record in _patient_records(app, who, patient)
        for issue in fhir.detected_issues(record.discrepancies, record.patient_id)
    ]
    return _fhir(_searchset(resources))


@router.get("/Patient/{patient_id}", summary="A patient: the pseudonym and (coordinators) the program id")
def read_patient(patient_id: str, request: Request, who: Caller) -> JSONResponse:
    app = carepath_app(request)
    require(who, "patient")
    found, _ = patient_person(app, who, "patient", patient_id)
    return _fhir(fhir.patient(patient_id, found))
