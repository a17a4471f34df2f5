"""``Idempotency-Key`` on every write: the same key with the same request answers what the first answered, without
doing it again; the same key with another request is refused (422); one still running is a 409.

Keys belong to the token that used them. The first answer is stored (:func:`engine.app.idempotency.claim_request`),
refusals included, so a retry after a lost response learns what happened; a server-side failure (5xx) releases
the key, so the retry runs. Event writes also pass the key on as the event id: the store's own once-only rule
(``carepath event --id``) holds behind this one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse

from engine.api.problems import Problem, problem_response
from engine.api.security import carepath_app
from engine.app.access import Principal
from engine.app.idempotency import claim_request, finish_request, release_request
from engine.app.refusals import refusal
from engine.errors import CarepathError

__all__ = ["IdempotencyKey", "once"]

#: A write handler's parameter: the client's idempotency key, if it sent one.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="a key unique to this request (e.g. a UUID); a retry with the same key is applied once",
    ),
]


def _media(request: Request, status: int) -> str:
    if request.url.path.startswith("/fhir"):
        return "application/fhir+json"
    return "application/problem+json" if status >= 400 else "application/json"


def once(
    request: Request, principal: Principal, key: str | None, body: Any, run: Callable[[], tuple[int, Any]]
) -> JSONResponse:
    """Run the write ``run`` (-> status, JSON body) at most once per (token, key, request)."""
    if key is None:
        status, payload = run()
        return JSONResponse(payload, status, media_type=_media(request, status))
    app = carepath_app(request)
    digest = hashlib.sha256(
        json.dumps([request.method, request.url.path, body], sort_keys=True, default=str).encode()
    ).hexdigest()
    claim = claim_request(app, principal.token_id, key, digest)
    if claim.kind == "replay":
        status = int(claim.status_code or 200)
        headers = {"Idempotent-Replayed": "true"}
        return JSONResponse(claim.body, status, headers=headers, media_type=_media(request, status))
    if claim.kind == "in-progress":
        raise Problem(409, "in-progress", "a request with this Idempotency-Key is still running; retry later")
    if claim.kind == "mismatch":
        raise Problem(422, "key-reused", "this Idempotency-Key was used for another request; use a new key")
    try:
        status, payload = run()
    except CarepathError as exc:
        status, code = refusal(exc)
        if status >= 500:
            release_request(app, principal.token_id, key)
            raise
        refused = problem_response(request, status, code, str(exc))
        finish_request(app, principal.token_id, key, status, json.loads(bytes(refused.body)))
        return refused
    except BaseException:
        release_request(app, principal.token_id, key)
        raise
    finish_request(app, principal.token_id, key, status, payload)
    return JSONResponse(payload, status, media_type=_media(request, status))
