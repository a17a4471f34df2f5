"""Request idempotency for the HTTP API: a client sends an ``Idempotency-Key`` with a write, and the same key
again (a retry after a timeout) gets the first response back instead of a second write.

The HTTP layer calls :func:`claim_request` before it acts: ``new`` (run it, then :func:`finish_request` with the
response, or :func:`release_request` after a server error so a retry can run), ``replay`` (answer the stored
response), ``in-progress`` (the first request still runs) or ``mismatch`` (the key was used for another request).
Keys are per token. Exactly one of any number of concurrent claims of a key is ``new``: the store's primary key
decides (:func:`engine.store.claim_api_request`). A claim still unfinished after :data:`CLAIM_STALE` of wall time
was left by a process that died mid-request: the next claim of the key takes it over (``new``) and the request
runs again, which the write's own once-only rule makes safe (an event's key is its event id).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from engine import store
from engine.app import inputs
from engine.app.context import App
from engine.errors import InvalidInput

__all__ = [
    "CLAIM_STALE",
    "Claim",
    "ClaimKind",
    "claim_request",
    "finish_request",
    "release_request",
    "request_digest",
]

#: Wall time after which an unfinished claim is taken to be a dead process's (a request takes seconds).
CLAIM_STALE = timedelta(minutes=2)

ClaimKind = Literal["new", "replay", "in-progress", "mismatch"]
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Claim:
    """What to do with a request: ``kind``, and for a ``replay`` the stored ``status_code`` and ``body``."""

    kind: ClaimKind
    status_code: int | None = None
    body: Any = None


def request_digest(method: str, path: str, body: bytes) -> str:
    """The digest :func:`claim_request` compares: sha256 (hex) of the method, the path (with its query) and the
    body, so a key reused for another request is told apart from a retry."""
    text = b"\n".join((method.upper().encode(), path.encode(), body))
    return hashlib.sha256(text).hexdigest()


def claim_request(app: App, token_id: str, key: str, digest: str) -> Claim:
    """Claim ``key`` for the request ``digest`` of ``token_id`` (see the module docstring for the four answers)."""
    _check(token_id, key)
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInput("digest", "is not a sha256 hex digest (see request_digest)")
    wall = app.clock.wall_time(app.clock.now())  # claims age in wall time: a compressed clock must not age them
    with store.session_scope(app.engine) as session:
        inserted, record = store.claim_api_request(session, token_id, key, digest, wall)
    if inserted:
        return Claim("new")
    if record.digest != digest:
        return Claim("mismatch")
    if record.status_code is None:
        with store.session_scope(app.engine) as session:
            taken = store.take_over_api_request(session, token_id, key, wall - CLAIM_STALE, wall)
        return Claim("new" if taken else "in-progress")
    return Claim("replay", record.status_code, record.body)


def finish_request(app: App, token_id: str, key: str, status_code: int, body: Any) -> None:
    """Store the response of a ``new`` claim (``body`` as JSON), to replay for the same key from now on."""
    _check(token_id, key)
    if isinstance(status_code, bool) or not isinstance(status_code, int) or not 100 <= status_code <= 599:
        raise InvalidInput("status code", "is not an HTTP status code (100-599)", status_code)
    with store.session_scope(app.engine) as session:
        store.finish_api_request(session, token_id, key, status_code, body, app.clock.wall_time(app.clock.now()))


def release_request(app: App, token_id: str, key: str) -> None:
    """Forget an unfinished claim (the request failed with a server error), so a retry with the key runs; a
    finished request keeps its response."""
    _check(token_id, key)
    with store.session_scope(app.engine) as session:
        store.release_api_request(session, token_id, key)


def _check(token_id: str, key: str) -> None:
    inputs.check_id("token id", token_id)
    inputs.check_id("Idempotency-Key", key)
