"""The HTTP API's rows: bearer tokens (issued, listed, revoked, looked up by id) and the idempotency claims of
its requests.

A claim is ``INSERT ... ON CONFLICT DO NOTHING`` on the (token, key) primary key, as the other exactly-once writes:
however many requests with one key race, the database lets one insert the row and the others read it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from engine.errors import EventRejected, InvalidInput, StoreError, quote
from engine.store.db import dialect_insert
from engine.store.records import ApiRequestRecord, ApiTokenRecord

__all__ = [
    "add_api_token",
    "api_tokens",
    "claim_api_request",
    "finish_api_request",
    "get_api_token",
    "release_api_request",
    "revoke_api_token",
    "take_over_api_request",
    "touch_api_token",
]


# ---------------------------------------------------------------------------------------------------- tokens


def add_api_token(session: Session, record: ApiTokenRecord) -> ApiTokenRecord:
    """Store a new token; :class:`~engine.errors.InvalidInput` (``label``) when an unrevoked token has its label.

    The partial unique index decides, inside a savepoint, so two concurrent creations cannot both take a label and
    the caller's transaction stays usable (it rolls back on the error anyway, changing nothing).
    """
    if session.get(ApiTokenRecord, record.id) is not None:
        raise StoreError(f"token id {record.id} is taken")  # 32 random bits: the caller draws another
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError as exc:
        raise InvalidInput(
            "label", "is the label of another active token; choose another --name, or revoke that token", record.label
        ) from exc
    return record


def get_api_token(session: Session, token_id: str) -> ApiTokenRecord | None:
    """The token with ``token_id`` (revoked or not), by its primary key: one indexed read."""
    return session.get(ApiTokenRecord, token_id)


def api_tokens(session: Session) -> list[ApiTokenRecord]:
    """Every token, revoked ones included, newest first."""
    query = select(ApiTokenRecord).order_by(col(ApiTokenRecord.created_at).desc(), col(ApiTokenRecord.id).desc())
    return list(session.exec(query))


def revoke_api_token(session: Session, token_id_or_label: str, at: datetime) -> ApiTokenRecord:
    """Revoke a token named by its id or by the label of an unrevoked token. Refused
    (:class:`~engine.errors.EventRejected`, nothing changed) when there is no such token or it is revoked already.

    The row is locked first (PostgreSQL), so two concurrent revocations cannot both succeed.
    """
    by_id = col(ApiTokenRecord.id) == token_id_or_label
    by_label = and_(col(ApiTokenRecord.label) == token_id_or_label, col(ApiTokenRecord.revoked_at).is_(None))
    query = select(ApiTokenRecord).where(or_(by_id, by_label)).with_for_update()
    rows = list(session.exec(query.execution_options(populate_existing=True)))
    record = next((r for r in rows if r.id == token_id_or_label), rows[0] if rows else None)
    if record is None:
        revoked = session.exec(select(ApiTokenRecord).where(ApiTokenRecord.label == token_id_or_label)).first()
        if revoked is not None:
            raise EventRejected(f"token {quote(token_id_or_label)} was already revoked")
        raise EventRejected(f"no token {quote(token_id_or_label)} (see carepath token list)")
    if record.revoked_at is not None:
        raise EventRejected(f"token {record.id} was already revoked on {record.revoked_at:%Y-%m-%d %H:%M} UTC")
    record.revoked_at = at
    session.add(record)
    session.flush()
    return record


def touch_api_token(session: Session, token_id: str, at: datetime, every: timedelta) -> bool:
    """Set ``last_used_at`` to ``at`` unless it was set less than ``every`` before; True if it was set."""
    statement = (
        update(ApiTokenRecord)
        .where(col(ApiTokenRecord.id) == token_id)
        .where(or_(col(ApiTokenRecord.last_used_at).is_(None), col(ApiTokenRecord.last_used_at) <= at - every))
        .values(last_used_at=at)
    )
    result = session.execute(statement, execution_options={"synchronize_session": False})
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------- idempotency keys


def claim_api_request(
    session: Session, token_id: str, key: str, digest: str, at: datetime
) -> tuple[bool, ApiRequestRecord]:
    """Claim ``key`` for a request of ``token_id``: ``(True, row)`` if this call inserted the row (an unfinished
    claim), else ``(False, the row stored before)`` for the caller to compare, wait on or replay."""
    statement = (
        dialect_insert(session, ApiRequestRecord)
        .values(token_id=token_id, key=key, digest=digest, status_code=None, body=None, created_at=at)
        .on_conflict_do_nothing(index_elements=["token_id", "key"])
        .returning(col(ApiRequestRecord.key))
    )
    inserted = session.execute(statement).scalar_one_or_none() is not None
    record = session.get(ApiRequestRecord, (token_id, key), populate_existing=True)
    if record is None:  # only if the row was released between the insert and the read
        raise StoreError(f"the claim of request key {quote(key)} vanished; try again")
    return inserted, record


def take_over_api_request(session: Session, token_id: str, key: str, stale_before: datetime, at: datetime) -> bool:
    """Take over an unfinished claim made before ``stale_before`` (its process died mid-request): True for the one
    caller whose update moved its time to ``at``; a finished or fresh claim is left alone."""
    statement = (
        update(ApiRequestRecord)
        .where(
            col(ApiRequestRecord.token_id) == token_id,
            col(ApiRequestRecord.key) == key,
            col(ApiRequestRecord.status_code).is_(None),
            col(ApiRequestRecord.created_at) < stale_before,
        )
        .values(created_at=at)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def finish_api_request(
    session: Session, token_id: str, key: str, status_code: int, body: Any, at: datetime
) -> ApiRequestRecord:
    """Store the response of a claimed request, for replay; :class:`~engine.errors.StoreError` if the key has no
    unfinished claim (released, finished already, never claimed: a caller's bug)."""
    record = session.get(ApiRequestRecord, (token_id, key), populate_existing=True, with_for_update=True)
    if record is None or record.status_code is not None:
        state = "no claim" if record is None else "a finished response"
        raise StoreError(f"request key {quote(key)} of token {token_id} has {state}; nothing to finish")
    record.status_code, record.body, record.finished_at = status_code, body, at
    session.add(record)
    session.flush()
    return record


def release_api_request(session: Session, token_id: str, key: str) -> bool:
    """Delete an unfinished claim so a retry can run; a finished one stays (its response is the answer). True if
    a claim was released."""
    statement = delete(ApiRequestRecord).where(
        col(ApiRequestRecord.token_id) == token_id,
        col(ApiRequestRecord.key) == key,
        col(ApiRequestRecord.status_code).is_(None),
    )
    result = session.execute(statement, execution_options={"synchronize_session": False})
    return bool(result.rowcount)  # type: ignore[attr-defined]
