"""What a client sends to ``/api/v1``: the CLI's options as JSON fields, with the same names and meaning.

The models only give the request its shape (and OpenAPI its schema); every value is checked by the use case it
reaches (:mod:`engine.app.inputs`), with the same one-line messages as the CLI. Unknown fields are refused, so a
misspelt field is an error, not a silent default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AcknowledgeIn",
    "AuthorizationIn",
    "ConsentIn",
    "EnrollIn",
    "EventIn",
    "IntentionalIn",
    "MedicationsIn",
    "MoveIn",
    "RevokeIn",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollIn(_Body):
    pathway: str = Field(max_length=200, description="pathway id, e.g. reentry")
    person: str = Field(max_length=200, description="the program's opaque person id, e.g. P-000123")
    at: str | None = Field(None, max_length=100, description="enrollment time, ISO 8601 (default: now)")
    params: dict[str, str] = Field(default_factory=dict, description="pathway parameters: name -> duration (72h)")
    facts: dict[str, Any] = Field(default_factory=dict, description="initial episode facts, as the pathway declares")


class EventIn(_Body):
    name: str = Field(max_length=200, description="the event, as the pathway names it")
    data: dict[str, Any] = Field(default_factory=dict, description="the event's payload, as the pathway declares")


class MoveIn(_Body):
    action: str = Field(max_length=100, description="accept, decline, schedule, keep, return-outcome, cancel ...")
    party: Literal["sender", "receiver"] | None = Field(None, description="who moves it (a receiver: always itself)")
    reason: str | None = Field(None, max_length=4000, description="why (decline, hold, fail, cancel need one)")
    appointment_at: str | None = Field(None, max_length=100, description="appointment time for schedule (ISO 8601)")
    outcome: str | None = Field(None, max_length=4000, description="the receiver's outcome, for return-outcome")


class AuthorizationIn(_Body):
    action: Literal["request", "approve", "deny"]
    reason: str | None = Field(None, max_length=4000, description="why it was denied")
    to: str | None = Field(None, max_length=200, description="the stage the move admits to (request before it)")
    handoff: str | None = Field(None, max_length=200, description="which handoff's authorization")


class ConsentIn(_Body):
    id: str = Field(max_length=200, description="the consent form's id, e.g. cn-2026-0042")
    purposes: list[str] = Field(max_length=50, description="treatment, payment, family-involvement ...")
    recipients: list[str] = Field(default_factory=list, max_length=50, description="named recipients")
    recipient_classes: list[str] = Field(default_factory=list, max_length=50, description="e.g. treating-providers")
    information: str = Field(max_length=4000, description="what may be disclosed, specifically")
    discloser: str = Field(max_length=400, description="the program that may disclose")
    expires: str = Field("end-of-treatment", max_length=100, description="a date, end-of-treatment or none")
    signed_on: str = Field(max_length=100, description="signature date, YYYY-MM-DD")
    signed_by: str = Field(max_length=200, description="who signed (opaque id)")


class RevokeIn(_Body):
    written: bool = Field(description="the revocation is in writing (required by 42 CFR Part 2)")


class MedicationsIn(_Body):
    side: Literal["sending", "receiving"] = Field(description="discharge list (sending) or admission (receiving)")
    medications: list[dict[str, str]] = Field(
        max_length=200, description="each: name and optionally dose, route, frequency, rxnorm"
    )


class IntentionalIn(_Body):
    reason: str = Field(max_length=4000)
    by: str = Field(max_length=200, description="the clinician's id")


class AcknowledgeIn(_Body):
    by: str = Field(max_length=200, description="the staff member who took it on (an opaque id)")
