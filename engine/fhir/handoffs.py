"""A handoff as the closed-loop referral pair the BSeR and Gravity IGs use: the ``ServiceRequest`` (what is asked of
the receiving program) and the ``Task`` that tracks its fulfilment (FHIR status + BSeR business status).

Both carry the handoff's id as their own (encoded by :func:`~engine.fhir.ids.fhir_id`), so ``Task/x`` focuses on
``ServiceRequest/x``; the Task is what the receiver changes (:mod:`engine.fhir.task_moves`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.episode.domain.handoff_terms import BSER_CODES
from engine.fhir.ids import (
    BSER_SYSTEM,
    DEFAULT_REQUESTER,
    HANDOFF_ID_SYSTEM,
    fhir_id,
    instant,
    organization_ref,
    patient_ref,
    ref,
)

if TYPE_CHECKING:
    from engine.store.records import HandoffRecord, WorkItemRecord

__all__ = ["business_status", "service_request", "task"]

#: ``Task.output`` entries are told apart by their ``type.text``.
APPOINTMENT = "appointment"
OUTCOME = "outcome"
_TASK_CODE = {
    "coding": [
        {
            "system": "http://hl7.org/fhir/CodeSystem/task-code",
            "code": "fulfill",
            "display": "Fulfill the focal request",
        }
    ]
}
#: ServiceRequest.status per Task.status: the request stands while the Task is worked on (held included).
_REQUEST_STATUS = {
    "draft": "draft",
    "completed": "completed",
    "rejected": "revoked",
    "failed": "revoked",
    "cancelled": "revoked",
}


def business_status(name: str) -> dict[str, Any]:
    """The BSeR ``TaskBusinessStatusCS`` concept for a business status (``accepted`` -> ``3.0``)."""
    code, display = BSER_CODES[name]
    return {"coding": [{"system": BSER_SYSTEM, "code": code, "display": display}], "text": name}


def _identifier(handoff: HandoffRecord) -> list[dict[str, Any]]:
    return [{"system": HANDOFF_ID_SYSTEM, "value": handoff.id}]


def task(
    handoff: HandoffRecord,
    episode_id: str,
    patient_id: str,
    deadlines: Iterable[WorkItemRecord],
    requester_org: str = DEFAULT_REQUESTER,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The handoff's Task. ``deadlines`` may hold any work items: the earliest open one of this handoff becomes
    ``restriction.period.end``. ``now`` stands in for ``lastModified`` on rows written before ``updated_at``."""
    hid = fhir_id(handoff.id)
    modified = handoff.updated_at or now or handoff.opened_at
    out: dict[str, Any] = {
        "resourceType": "Task",
        "id": hid,
        "meta": {"lastUpdated": instant(modified)},
        "identifier": _identifier(handoff),
        "basedOn": [ref("CarePlan", fhir_id(episode_id))],
        "status": handoff.status,
        "businessStatus": business_status(handoff.business_status),
        "intent": "order",
        "code": _TASK_CODE,
        "focus": ref("ServiceRequest", hid),
        "for": patient_ref(patient_id),
        "authoredOn": instant(handoff.opened_at),
        "lastModified": instant(modified),
        "requester": organization_ref(requester_org),
        "owner": organization_ref(handoff.program),
        "executionPeriod": {"start": instant(handoff.opened_at)},
    }
    if handoff.status_reason:
        out["statusReason"] = {"text": handoff.status_reason}
    if handoff.closed_at is not None:
        out["executionPeriod"]["end"] = instant(handoff.closed_at)
    due = [d.due_at for d in deadlines if d.handoff_id == handoff.id and d.status == "open"]
    if due:
        out["restriction"] = {"period": {"end": instant(min(due))}}
    output = []
    if handoff.appointment_at is not None:
        output.append({"type": {"text": APPOINTMENT}, "valueDateTime": instant(handoff.appointment_at)})
    if handoff.outcome:
        output.append({"type": {"text": OUTCOME}, "valueString": handoff.outcome})
    if output:
        out["output"] = output
    return out


def service_request(handoff: HandoffRecord, patient_id: str, requester_org: str = DEFAULT_REQUESTER) -> dict[str, Any]:
    """What the sender asks of the receiving program: a ``warm``/``standard`` handoff to its intake role."""
    out: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": fhir_id(handoff.id),
        "identifier": _identifier(handoff),
        "basedOn": [ref("CarePlan", fhir_id(handoff.episode_id))],
        "status": _REQUEST_STATUS.get(handoff.status, "active"),
        "intent": "order",
        "category": [{"text": f"{handoff.mode} handoff"}],
        "code": {"text": f"referral to {handoff.role}"},
        "subject": patient_ref(patient_id),
        "authoredOn": instant(handoff.opened_at),
        "requester": organization_ref(requester_org),
        "performer": [organization_ref(handoff.program)],
        "reasonCode": [{"text": handoff.consent_purpose}],
    }
    if handoff.appointment_at is not None:
        out["occurrenceDateTime"] = instant(handoff.appointment_at)
    return out
