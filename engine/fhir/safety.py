"""The safety core in FHIR R4: 42 CFR Part 2 consents as ``Consent``, a setting's medication list as
``MedicationStatement``\\ s, reconciliation findings as ``DetectedIssue``\\ s.

A consent's ``person_ref`` and ``signed_by`` are program ids, so neither is written: the Patient reference is the
caller's pseudonym, and the patient is the performer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from engine.episode.domain.consent import is_current
from engine.fhir.ids import fhir_id, instant, organization_ref, patient_ref

if TYPE_CHECKING:
    from engine.store.records import ConsentRecord, DiscrepancyRecord, MedicationListRecord

__all__ = [
    "DISCREPANCY_SYSTEM",
    "PART2_POLICY",
    "PURPOSE_SYSTEM",
    "consent",
    "detected_issues",
    "medication_statements",
]

PART2_POLICY = "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#: Purposes HL7 has no code for (``family-involvement``, ``care-coordination``).
PURPOSE_SYSTEM = "https://carepath.example/purpose"
DISCREPANCY_SYSTEM = "https://carepath.example/discrepancy-kind"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_ACT_REASONS = {
    "treatment": ("TREAT", "treatment"),
    "payment": ("HPAYMT", "healthcare payment"),
    "health-care-operations": ("HOPERAT", "healthcare operations"),
}
_SCOPE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "patient-privacy",
            "display": "Privacy Consent",
        }
    ]
}
_CATEGORY = [
    {"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]},
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "IDSCL",
                "display": "information disclosure",
            }
        ]
    },
]
_RECIPIENT_ROLE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "IRCP",
            "display": "information recipient",
        }
    ]
}


def _purpose(name: str) -> dict[str, str]:
    if name in _ACT_REASONS:
        code, display = _ACT_REASONS[name]
        return {"system": ACT_REASON, "code": code, "display": display}
    return {"system": PURPOSE_SYSTEM, "code": name, "display": name}


def consent(
    record: ConsentRecord, patient_id: str, *, now: datetime | None = None, episode_active: bool = True
) -> dict[str, Any]:
    """A Part 2 consent: ``active`` unless revoked (or, given ``now``, expired or not yet signed: the domain's
    :func:`~engine.episode.domain.consent.is_current`). An ``end-of-treatment`` or ``none`` expiry leaves the
    provision's period open."""
    active = record.revoked_at is None if now is None else is_current(record.to_domain(), now, episode_active)
    period = {"start": record.signed_on}
    if record.expires not in ("end-of-treatment", "none"):
        period["end"] = date.fromisoformat(record.expires).isoformat()
    actors = [{"role": _RECIPIENT_ROLE, "reference": organization_ref(r)} for r in record.recipients]
    actors += [{"role": _RECIPIENT_ROLE, "reference": {"display": c}} for c in record.recipient_classes]
    provision: dict[str, Any] = {
        "type": "permit",
        "period": period,
        "actor": actors,
        "purpose": [_purpose(p) for p in record.purposes],
        "code": [{"text": record.information}],
    }
    return {
        "resourceType": "Consent",
        "id": fhir_id(record.id),
        "status": "active" if active else "inactive",
        "scope": _SCOPE,
        "category": _CATEGORY,
        "patient": patient_ref(patient_id),
        "dateTime": record.signed_on,
        "performer": [patient_ref(patient_id)],
        "organization": [organization_ref(record.discloser)],
        "policy": [{"authority": "https://www.ecfr.gov", "uri": PART2_POLICY}],
        "provision": provision,
    }


def _dosage(med: dict[str, Any]) -> list[dict[str, Any]]:
    parts = [med.get(k) for k in ("dose", "route", "frequency")]
    if not any(parts):
        return []
    out: dict[str, Any] = {"text": " ".join(str(p) for p in parts if p)}
    if med.get("route"):
        out["route"] = {"text": med["route"]}
    return [out]


def medication_statements(list_record: MedicationListRecord, patient_id: str) -> list[dict[str, Any]]:
    """One active MedicationStatement per line of a setting's list; ``informationSource`` names the side."""
    source = {"sending": "sending setting (discharge list)", "receiving": "receiving setting (admission list)"}
    out = []
    for n, med in enumerate(list_record.medications, start=1):
        concept: dict[str, Any] = {"text": med["name"]}
        if med.get("rxnorm"):
            concept["coding"] = [{"system": RXNORM, "code": med["rxnorm"], "display": med["name"]}]
        statement: dict[str, Any] = {
            "resourceType": "MedicationStatement",
            "id": fhir_id(f"{list_record.episode_id}/{list_record.visit}/{list_record.side}/{n}"),
            "status": "active",
            "medicationCodeableConcept": concept,
            "subject": patient_ref(patient_id),
            "dateAsserted": instant(list_record.recorded_at),
            "informationSource": {"display": source.get(list_record.side, list_record.side)},
        }
        if dosage := _dosage(med):
            statement["dosage"] = dosage
        if med.get("reason"):
            statement["reasonCode"] = [{"text": med["reason"]}]
        out.append(statement)
    return out


def _mitigation(d: DiscrepancyRecord) -> list[dict[str, Any]]:
    if d.status == "intentional-documented":
        entry: dict[str, Any] = {"action": {"text": f"documented as intentional: {d.reason}"}}
        if d.marked_at is not None:
            entry["date"] = instant(d.marked_at)
        return [entry]
    if d.status == "resolved":
        return [{"action": {"text": "resolved: a later comparison of the lists no longer finds it"}}]
    return []


def detected_issues(discrepancies: Iterable[DiscrepancyRecord], patient_id: str) -> list[dict[str, Any]]:
    """One DetectedIssue per reconciliation finding: ``high`` severity when critical (an omitted MOUD).

    Every finding is ``final`` (it was found); a clinician's mark or a later list that no longer shows it is a
    ``mitigation``, so the history stays readable as the domain keeps it.
    """
    return [
        {
            "resourceType": "DetectedIssue",
            "id": fhir_id(d.id),
            "status": "final",
            "code": {"coding": [{"system": DISCREPANCY_SYSTEM, "code": d.kind}], "text": d.kind},
            "severity": "high" if d.critical else "moderate",
            "patient": patient_ref(patient_id),
            "implicated": [{"display": d.medication}],
            "detail": d.detail,
            **({"mitigation": m} if (m := _mitigation(d)) else {}),
        }
        for d in discrepancies
    ]
