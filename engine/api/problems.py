"""Errors as RFC 9457 problem details (``application/problem+json``) under ``/api``, and as FHIR
``OperationOutcome`` under ``/fhir``: the same one-line message the CLI prints, never a traceback.

Each Carepath error maps to one status: bad input 422, a refused event or move 409, not found (or not yours) 404,
a role that may not 403, a busy store or an unreachable Prefect 503 (with ``Retry-After``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engine.app.refusals import refusal
from engine.errors import CarepathError, one_line, printable

__all__ = ["Problem", "install", "problem_response"]

logger = logging.getLogger("carepath.api")


class Problem(Exception):
    """An HTTP refusal raised by the API itself (401, a reused idempotency key): status, a short code, one line."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem_response(
    request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The problem for ``request``'s face: problem details, or an ``OperationOutcome`` under ``/fhir``."""
    detail = one_line(printable(detail))
    headers = dict(headers or {})
    if status == 503:
        headers.setdefault("Retry-After", "5")
    if request.url.path.startswith("/fhir"):
        body: dict[str, Any] = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": _FHIR_CODES.get(status, "processing"), "diagnostics": detail}],
        }
        return JSONResponse(body, status, headers=headers, media_type="application/fhir+json")
    body = {"type": f"/problems/{code}", "title": _TITLES.get(status, "Error"), "status": status, "detail": detail}
    return JSONResponse(body, status, headers=headers, media_type="application/problem+json")


_FHIR_CODES = {
    401: "login",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    422: "invalid",
    503: "transient",
}


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def install(api: FastAPI) -> None:
    """Answer every error of ``api`` as a problem: ours, FastAPI's (validation, 404, 405) and the unexpected."""

    @api.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.code, exc.detail, exc.headers)

    @api.exception_handler(CarepathError)
    async def _carepath(request: Request, exc: CarepathError) -> JSONResponse:
        status, code = refusal(exc)
        return problem_response(request, status, code, str(exc))

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(request, 422, "invalid-input", _validation_detail(exc))

    @api.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem_response(request, exc.status_code, "http", str(exc.detail), dict(exc.headers or {}))

    @api.middleware("http")
    async def _unexpected(request: Request, call_next: Any) -> Any:
        try:
            return await call_next(request)
        except Exception as exc:  # the last line of defence: a 500 problem, never a traceback on the wire
            # The type only, in the log too: a message or a traceback could quote what someone sent.
            logger.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
            return problem_response(request, 500, "internal", "internal error; the request may not have been applied")
