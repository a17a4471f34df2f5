"""Carepath in FHIR R4 JSON: pure functions from records already loaded to plain dicts, and back from a receiver's
change of a Task to a handoff move. No web framework, no Prefect, no database session; ``fhir.resources`` is a test
dependency only.

The mapping:

- a handoff is a ``ServiceRequest`` (what is asked of the receiving program) and a ``Task`` tracking it: FHIR
  ``Task.status`` plus ``businessStatus`` coded in BSeR ``TaskBusinessStatusCS`` (2.0 created, 3.0 accepted,
  4.0 declined, 5.1.1 event scheduled, 5.1.2 no-show, 5.1.3 event cancelled, 5.1.4 event completed,
  5.2 cancellation requested, 6.0 fulfillment cancelled, 7.0 fulfillment completed); the earliest open deadline
  is ``restriction.period.end``, the appointment and the outcome are ``output`` (:mod:`.handoffs`);
- an episode is a ``CarePlan`` whose activities are the pathway's stages (:mod:`.episode`);
- a 42 CFR Part 2 consent is a ``Consent``, a medication list ``MedicationStatement``\\ s, a reconciliation finding
  a ``DetectedIssue`` (:mod:`.safety`); ``$everything`` is a collection ``Bundle`` (:mod:`.bundle`);
- the ``Patient`` is the caller's pseudonym; it carries the person's program id (an ``identifier``) only when the
  caller passes it, and no other resource carries it. Nothing holds a name or a birth date;
- a receiver's PUT or JSON Patch of a Task becomes a move of the domain's table (:mod:`.task_moves`).

Ids: :mod:`.ids` (Carepath ids encoded as FHIR ids, Organization ids from program names). Imports
:mod:`engine.episode` (the handoff and consent rules) and, for types only, :mod:`engine.store` and :mod:`engine.plan`.
"""

from __future__ import annotations

from engine.fhir.bundle import EpisodeBundleInput, bundle_everything
from engine.fhir.episode import care_plan, organization, patient
from engine.fhir.handoffs import service_request, task
from engine.fhir.ids import DEFAULT_REQUESTER, fhir_id, slug, source_id
from engine.fhir.safety import consent, detected_issues, medication_statements
from engine.fhir.server import capability_statement, operation_outcome
from engine.fhir.task_moves import TaskChangeError, TaskMove, apply_json_patch, move_from_task_change

__all__ = [
    "DEFAULT_REQUESTER",
    "EpisodeBundleInput",
    "TaskChangeError",
    "TaskMove",
    "apply_json_patch",
    "bundle_everything",
    "capability_statement",
    "care_plan",
    "consent",
    "detected_issues",
    "fhir_id",
    "medication_statements",
    "move_from_task_change",
    "operation_outcome",
    "organization",
    "patient",
    "service_request",
    "slug",
    "source_id",
    "task",
]
