"""Stable FHIR ids and references, and the code systems the mapping writes.

Carepath's ids may hold ``/``, ``:`` and ``_`` (``ep-1a2b3c4d/2/handoff``) and run past 64 characters, which a FHIR
id may not (``[A-Za-z0-9-.]{1,64}``). :func:`fhir_id` keeps them readable where it can (``/`` becomes ``.``, so
``ep-1a2b3c4d.2.handoff``) and falls back to a digest otherwise; :func:`source_id` reverses the readable form, so
the HTTP layer can find a handoff from its Task id without a lookup table.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime
from typing import Any

__all__ = [
    "BSER_SYSTEM",
    "DEFAULT_REQUESTER",
    "HANDOFF_ID_SYSTEM",
    "PROGRAM_ID_SYSTEM",
    "check_fhir_id",
    "fhir_id",
    "instant",
    "organization_ref",
    "patient_ref",
    "ref",
    "slug",
    "source_id",
]

#: The sending organization when the caller names none.
DEFAULT_REQUESTER = "Carepath program"
BSER_SYSTEM = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
#: Where the person's program id lives, on the Patient only and only when asked for.
PROGRAM_ID_SYSTEM = "https://carepath.example/program-id"
#: Carepath's own handoff id (the Task id may be its encoded form).
HANDOFF_ID_SYSTEM = "https://carepath.example/handoff-id"

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_READABLE = re.compile(r"[A-Za-z0-9-]+(/[A-Za-z0-9-]+)*")
#: Digest ids hold ``..``, which a readable id never does (its source has no empty segment).
_DIGEST_PREFIX = "cp.."


def slug(name: str) -> str:
    """``Residential program`` -> ``residential-program``: an Organization id that stays put while the name does."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].rstrip("-")
    return text or fhir_id(name)


def fhir_id(value: str) -> str:
    """A valid FHIR id for a Carepath id: readable (``/`` -> ``.``) when it can be, else a stable digest."""
    if _READABLE.fullmatch(value) and len(value) <= 64:
        return value.replace("/", ".")
    return _DIGEST_PREFIX + hashlib.sha256(value.encode()).hexdigest()[:40]


def source_id(resource_id: str) -> str | None:
    """The Carepath id a readable :func:`fhir_id` came from; None for a digest (compare ``fhir_id(candidate)``)."""
    if resource_id.startswith(_DIGEST_PREFIX) or not _FHIR_ID.fullmatch(resource_id):
        return None
    return resource_id.replace(".", "/")


def check_fhir_id(value: str, what: str) -> str:
    """``value`` if it is a valid FHIR id, else ValueError naming ``what`` (a caller's pseudonym is used as is)."""
    if not isinstance(value, str) or not _FHIR_ID.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a FHIR id (1-64 letters, digits, '-' or '.')")
    return value


def ref(resource_type: str, resource_id: str, display: str | None = None) -> dict[str, Any]:
    """A relative reference, ``{"reference": "Task/x"}``, with a display when given."""
    out: dict[str, Any] = {"reference": f"{resource_type}/{resource_id}"}
    if display is not None:
        out["display"] = display
    return out


def organization_ref(name: str) -> dict[str, Any]:
    return ref("Organization", slug(name), name)


def patient_ref(patient_id: str) -> dict[str, Any]:
    return ref("Patient", check_fhir_id(patient_id, "patient id"))


def instant(value: datetime | date) -> str:
    """A FHIR dateTime/instant in UTC with ``Z`` (a naive value is taken as UTC, as the store writes it)."""
    if not isinstance(value, datetime):
        return value.isoformat()
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")
