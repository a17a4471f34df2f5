"""The episode as a ``CarePlan`` (the pathway's stages as its activities), and the ``Patient`` and ``Organization``
it points at.

The Patient is a pseudonym: its id is the caller's, and the person's program id appears (as an ``identifier``)
only when the caller passes it; no name, no birth date, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from engine.fhir.ids import PROGRAM_ID_SYSTEM, check_fhir_id, fhir_id, instant, patient_ref, ref, slug

if TYPE_CHECKING:
    from engine.plan.model import Plan
    from engine.store.readmodels import EpisodeStatus
    from engine.store.records import StageVisitRecord

__all__ = ["STAGE_SYSTEM", "care_plan", "organization", "patient"]

STAGE_SYSTEM = "https://carepath.example/stage"
#: Episode status -> CarePlan.status; an episode ended any other way is ``revoked``.
_PLAN_STATUS = {"active": "active", "completed": "completed"}


def _stage_status(stage: str, current: str, finished: bool, visited: set[str]) -> str:
    if stage == current:
        return "completed" if finished else "in-progress"
    return "completed" if stage in visited else "not-started"


def care_plan(
    status: EpisodeStatus, plan: Plan, patient_id: str, visits: Iterable[StageVisitRecord] = ()
) -> dict[str, Any]:
    """The episode as a CarePlan: one activity per stage in the plan's order, then one per handoff.

    A stage is ``in-progress`` while the episode is in it, ``completed`` once left (``visits``: the episode's stage
    visits, when the caller has them) and ``not-started`` otherwise. ``person_ref`` is never read.
    """
    episode = status.episode
    finished = episode.status == "completed"
    visited = {v.stage for v in visits if v.episode_id == episode.id and v.left_at is not None}
    period = {"start": instant(episode.enrolled_at)}
    if episode.status != "active":
        period["end"] = instant(episode.updated_at)
    activities: list[dict[str, Any]] = [
        {
            "detail": {
                "code": {"coding": [{"system": STAGE_SYSTEM, "code": s.id, "display": s.name}], "text": s.name},
                "status": _stage_status(s.id, episode.stage, finished, visited),
            }
        }
        for s in plan.stages.values()
    ]
    for h in sorted(status.handoffs, key=lambda h: (h.opened_at, h.id)):
        activities.append({"reference": ref("ServiceRequest", fhir_id(h.id))})
    return {
        "resourceType": "CarePlan",
        "id": fhir_id(episode.id),
        "meta": {"lastUpdated": instant(episode.updated_at), "versionId": str(episode.revision)},
        "status": _PLAN_STATUS.get(episode.status, "revoked"),
        "intent": "plan",
        "title": f"{plan.pathway_id} v{plan.version}",
        "description": plan.title,
        "subject": patient_ref(patient_id),
        "period": period,
        "activity": activities,
    }


def patient(patient_id: str, program_identifier: str | None = None) -> dict[str, Any]:
    """The pseudonymous Patient; the program id only when ``program_identifier`` is given."""
    out: dict[str, Any] = {"resourceType": "Patient", "id": check_fhir_id(patient_id, "patient id")}
    if program_identifier is not None:
        out["identifier"] = [{"system": PROGRAM_ID_SYSTEM, "value": program_identifier}]
    return out


def organization(name: str) -> dict[str, Any]:
    """A program or setting by name; its id is the name's :func:`~engine.fhir.ids.slug`."""
    return {"resourceType": "Organization", "id": slug(name), "name": name}
