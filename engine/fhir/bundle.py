"""``CarePlan/$everything``: one episode and everything it points at, as a ``collection`` Bundle."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.fhir.episode import care_plan, organization, patient
from engine.fhir.handoffs import service_request, task
from engine.fhir.ids import DEFAULT_REQUESTER, instant
from engine.fhir.safety import consent, detected_issues, medication_statements

if TYPE_CHECKING:
    from engine.plan.model import Plan
    from engine.store.readmodels import EpisodeStatus
    from engine.store.records import ConsentRecord, DiscrepancyRecord, MedicationListRecord, StageVisitRecord

__all__ = ["EpisodeBundleInput", "bundle_everything", "full_url"]


@dataclass(frozen=True)
class EpisodeBundleInput:
    """What the store has loaded for one episode; ``program_identifier`` only when the caller may see it.

    ``status.items`` (the open work) supplies the Tasks' deadlines. ``base_url`` makes ``fullUrl`` the resources'
    RESTful addresses (so the relative references resolve inside the Bundle); without it they are ``urn:uuid:``.
    """

    status: EpisodeStatus
    plan: Plan
    patient_id: str
    now: datetime
    requester_org: str = DEFAULT_REQUESTER
    program_identifier: str | None = None
    consents: Sequence[ConsentRecord] = ()
    medication_lists: Sequence[MedicationListRecord] = ()
    discrepancies: Sequence[DiscrepancyRecord] = ()
    visits: Sequence[StageVisitRecord] = ()
    base_url: str | None = None


def full_url(resource: dict[str, Any], base_url: str | None = None) -> str:
    """``<base>/<type>/<id>``, or a ``urn:uuid:`` stable for the same type and id."""
    path = f"{resource['resourceType']}/{resource['id']}"
    if base_url is not None:
        return f"{base_url.rstrip('/')}/{path}"
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'carepath:' + path)}"


def _organizations(data: EpisodeBundleInput) -> list[dict[str, Any]]:
    names = [data.requester_org, *(h.program for h in data.status.handoffs)]
    for c in data.consents:
        names += [c.discloser, *c.recipients]
    seen: dict[str, dict[str, Any]] = {}
    for name in names:
        org = organization(name)
        seen.setdefault(org["id"], org)
    return list(seen.values())


def bundle_everything(data: EpisodeBundleInput) -> dict[str, Any]:
    """The episode's CarePlan, its Patient, Organizations, ServiceRequests and Tasks, Consents,
    MedicationStatements and DetectedIssues, in that order."""
    status, pid = data.status, data.patient_id
    handoffs = sorted(status.handoffs, key=lambda h: (h.opened_at, h.id))
    episode_active = status.episode.status == "active"
    resources: list[dict[str, Any]] = [
        care_plan(status, data.plan, pid, data.visits),
        patient(pid, data.program_identifier),
        *_organizations(data),
        *(service_request(h, pid, data.requester_org) for h in handoffs),
        *(task(h, status.episode.id, pid, status.items, data.requester_org, data.now) for h in handoffs),
        *(consent(c, pid, now=data.now, episode_active=episode_active) for c in data.consents),
        *(s for lst in data.medication_lists for s in medication_statements(lst, pid)),
        *detected_issues(data.discrepancies, pid),
    ]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": instant(data.now),
        "entry": [{"fullUrl": full_url(r, data.base_url), "resource": r} for r in resources],
    }
