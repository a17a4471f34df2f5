"""What kind of refusal an error is, as every network face answers it (the API's problem details, the FHIR
``OperationOutcome``, the worklist's pages): one HTTP status and a short code per error class, so a refusal reads
the same whichever face it came through."""

from __future__ import annotations

from engine.errors import (
    CarepathError,
    EpisodeError,
    EventRejected,
    Forbidden,
    InvalidInput,
    NotFound,
    OrchestrationError,
    PathwayError,
    PlanError,
    StoreBusy,
)

__all__ = ["refusal"]

#: error class -> (status, code), most specific first.
_REFUSALS: tuple[tuple[type[CarepathError], int, str], ...] = (
    (InvalidInput, 422, "invalid-input"),
    (PathwayError, 422, "invalid-pathway"),
    (PlanError, 422, "invalid-input"),
    (NotFound, 404, "not-found"),
    (Forbidden, 403, "forbidden"),
    (EventRejected, 409, "refused"),
    (EpisodeError, 409, "refused"),
    (StoreBusy, 503, "busy"),
    (OrchestrationError, 503, "unavailable"),
)


def refusal(exc: CarepathError) -> tuple[int, str]:
    """The HTTP status and short code of a Carepath error (400 ``bad-request`` for one no row names)."""
    return next(((s, c) for cls, s, c in _REFUSALS if isinstance(exc, cls)), (400, "bad-request"))
