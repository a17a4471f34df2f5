"""Synthetic records for the FHIR tests, built in memory (no database): every handoff state the domain's table
reaches, and one episode with its consents, medication lists and findings. Validation is by ``fhir.resources``."""

from __future__ import annotations

import functools
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from fhir.resources.R4B import get_fhir_model_class

from engine.episode.domain.handoff import HandoffState, legal_moves, move, open_handoff
from engine.language.model import PathwaySpec
from engine.plan.build import compile_plan
from engine.plan.model import Plan
from engine.store.readmodels import EpisodeStatus
from engine.store.records import (
    ConsentRecord,
    DiscrepancyRecord,
    EpisodeRecord,
    HandoffRecord,
    MedicationListRecord,
    StageVisitRecord,
    WorkItemRecord,
)

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
EPISODE = "ep-1a2b3c4d"
HID = f"{EPISODE}/2/handoff"
#: The person's program id: only the asked-for Patient may carry it.
PERSON = "P-000123"
#: The caller's pseudonym for the person.
PSEUDONYM = "pt-9c1e77"
PROGRAM = "Residential program"
VISIT = T0 + timedelta(days=2)
DETAILS: dict[str, Any] = {"reason": "no bed", "appointment_at": VISIT, "consent_id": "cn-1", "outcome": "engaged"}

StateKey = tuple[str, str, str | None]


def validate(resource: dict[str, Any]) -> Any:
    """The ``fhir.resources`` R4B model of ``resource``; raises if it is not valid."""
    return get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@functools.cache
def seed_plan() -> Plan:
    text = (ROOT / "pathways" / "detox-to-aftercare.yaml").read_text()
    return compile_plan(PathwaySpec.model_validate(yaml.safe_load(text)))


def reachable_states() -> dict[StateKey, HandoffState]:
    """Every (status, business status, held from) the table reaches from a fresh draft, by either party."""
    start, _ = open_handoff(HID, T0, consent_id=None, purpose="treatment")
    seen: dict[StateKey, HandoffState] = {}
    queue = deque([start])
    n = 0
    while queue:
        state = queue.popleft()
        key = (state.status, state.business_status, state.held_from)
        if key in seen:
            continue
        seen[key] = state
        for action, parties in legal_moves(state):
            for party in parties:
                n += 1
                queue.append(move(state, action, party, T0 + timedelta(minutes=n), **DETAILS)[0])
    return seen


def handoff_record(state: HandoffState, program: str = PROGRAM) -> HandoffRecord:
    return HandoffRecord(
        id=state.id,
        episode_id=EPISODE,
        transition_index=2,
        program=program,
        role="residential-intake",
        mode="warm",
        consent_purpose="treatment",
        visit=2,
        status=state.status,
        business_status=state.business_status,
        opened_at=state.opened_at,
        closed_at=state.closed_at,
        status_reason=state.status_reason,
        consent_id=state.consent_id,
        held_from=state.held_from,
        appointment_at=state.appointment_at,
        outcome=state.outcome,
        steps_met=list(state.steps_met),
        updated_at=state.updated_at,
    )


def work_item(item_id: str, due: datetime, handoff_id: str | None = HID, status: str = "open") -> WorkItemRecord:
    return WorkItemRecord(
        id=item_id,
        episode_id=EPISODE,
        handoff_id=handoff_id,
        kind="handoff-step",
        key=item_id,
        title="Handoff step",
        owner="care-coordinator",
        due_at=due,
        done_on="handoff.accepted",
        status=status,
        opened_at=T0,
    )


def episode_status(
    stage: str = "residential", status: str = "active", handoffs: list[HandoffRecord] | None = None
) -> EpisodeStatus:
    episode = EpisodeRecord(
        id=EPISODE,
        person_ref=PERSON,
        pathway_id="detox-to-aftercare",
        pathway_version=2,
        stage=stage,
        status=status,
        visit=2,
        enrolled_at=T0,
        stage_entered_at=T0 + timedelta(days=1),
        updated_at=T0 + timedelta(days=3),
        revision=7,
    )
    items = [work_item("w-1", T0 + timedelta(days=1)), work_item("w-0", T0 + timedelta(hours=5), handoff_id=None)]
    return EpisodeStatus(episode, items, {}, handoffs or [], [], [])


def visits() -> list[StageVisitRecord]:
    return [
        StageVisitRecord(id=1, episode_id=EPISODE, stage="assessment", entered_at=T0, left_at=T0 + timedelta(hours=3)),
        StageVisitRecord(
            id=2, episode_id=EPISODE, stage="withdrawal-management", entered_at=T0, left_at=T0 + timedelta(days=1)
        ),
        StageVisitRecord(id=3, episode_id=EPISODE, stage="residential", entered_at=T0 + timedelta(days=1)),
    ]


def consent_record(**changes: Any) -> ConsentRecord:
    fields: dict[str, Any] = {
        "id": "cn-2025-0042",
        "person_ref": PERSON,
        "discloser": "Carepath program",
        "information": "SUD treatment summary and medication list",
        "recipients": [PROGRAM],
        "recipient_classes": ["treating-providers"],
        "purposes": ["treatment", "payment", "health-care-operations", "family-involvement"],
        "expires": "2026-03-01",
        "signed_on": "2025-02-27",
        "signed_by": PERSON,
        "recorded_at": T0,
    }
    return ConsentRecord(**(fields | changes))


def medication_list(side: str = "sending") -> MedicationListRecord:
    meds = [
        {"name": "buprenorphine-naloxone", "rxnorm": "1010600", "dose": "8 mg", "route": "sublingual"},
        {"name": "Atorvastatin 20 mg", "frequency": "daily"},
        {"name": "ondansetron", "reason": "nausea"},
    ]
    return MedicationListRecord(id=1, episode_id=EPISODE, visit=2, side=side, medications=meds, recorded_at=T0)


def discrepancies() -> list[DiscrepancyRecord]:
    base = {"episode_id": EPISODE, "visit": 2}
    return [
        DiscrepancyRecord(
            id=f"{EPISODE}/2/omission:buprenorphine",
            key="omission:buprenorphine",
            kind="omission",
            medication="buprenorphine-naloxone",
            detail="on the discharge list, missing from the admission list",
            critical=True,
            medication_class="moud",
            **base,
        ),
        DiscrepancyRecord(
            id=f"{EPISODE}/2/dose-change:atorvastatin",
            key="dose-change:atorvastatin",
            kind="dose-change",
            medication="atorvastatin",
            detail="20 mg -> 40 mg",
            status="intentional-documented",
            reason="lipids above target",
            marked_by="CLIN-7",
            marked_at=T0 + timedelta(days=1),
            **base,
        ),
        DiscrepancyRecord(
            id=f"{EPISODE}/2/duplication:ondansetron",
            key="duplication:ondansetron",
            kind="duplication",
            medication="ondansetron",
            detail="listed twice",
            status="resolved",
            **base,
        ),
    ]
