"""What the FHIR face says about itself (``CapabilityStatement``) and how it refuses (``OperationOutcome``)."""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["CAPABILITY_DATE", "IssueSeverity", "capability_statement", "operation_outcome"]

#: When the statement below last changed; bump it with the statement.
CAPABILITY_DATE = "2026-11-29"
IssueSeverity = Literal["fatal", "error", "warning", "information"]

_READ = [{"code": "read"}]


def _resource(kind: str, profile_note: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "documentation": profile_note, "interaction": _READ, **extra}


def capability_statement(base_url: str) -> dict[str, Any]:
    """A FHIR R4 server statement: read everything an episode holds; receivers change Tasks (PATCH or PUT)."""
    task = _resource(
        "Task",
        "A handoff: status + BSeR business status. Receivers move it by changing status, businessStatus, "
        "statusReason and output only.",
        interaction=[{"code": "read"}, {"code": "search-type"}, {"code": "patch"}, {"code": "update"}],
        searchParam=[
            {"name": "owner", "type": "reference", "documentation": "Organization/<program slug>"},
            {"name": "status", "type": "token"},
        ],
    )
    care_plan = _resource(
        "CarePlan",
        "An episode on a pathway; its stages are the activities.",
        operation=[
            {"name": "everything", "definition": f"{base_url.rstrip('/')}/OperationDefinition/CarePlan-everything"}
        ],
    )
    notes = {
        "ServiceRequest": "What a handoff asks of the receiving program.",
        "Consent": "A 42 CFR Part 2 consent.",
        "MedicationStatement": "One line of a setting's medication list.",
        "DetectedIssue": "A medication reconciliation finding.",
        "Patient": "A pseudonym; carries the program id only when the caller is entitled to it.",
        "Organization": "A program, by the slug of its name.",
    }
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITY_DATE,
        "publisher": "Carepath",
        "kind": "instance",
        "software": {"name": "Carepath"},
        "implementation": {"description": "Carepath closed-loop referrals", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "security": {"description": "Bearer token in the Authorization header."},
                "resource": [task, care_plan, *(_resource(k, v) for k, v in notes.items())],
            }
        ],
    }


def operation_outcome(severity: IssueSeverity, code: str, diagnostics: str) -> dict[str, Any]:
    """One issue; ``code`` is from the FHIR ``issue-type`` value set (``invalid``, ``not-found``, ``conflict`` ...)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
