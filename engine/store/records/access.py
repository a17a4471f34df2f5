"""Who may call the HTTP API, and what it answered: bearer tokens and the idempotency keys of requests
(migration 0005).

A token's secret is never stored, only its sha256 (the secret is 256 random bits, so a plain hash is enough and
a lookup stays one indexed read). Tokens are never deleted: revoking sets ``revoked_at``, and the audit trail
keeps naming the label.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, text
from sqlmodel import Field, SQLModel

from engine.store.records.columns import UTCDateTime, fk

__all__ = ["ApiRequestRecord", "ApiTokenRecord"]

_ACTIVE = text("revoked_at IS NULL")


class ApiTokenRecord(SQLModel, table=True):
    """A bearer token: ``role`` is coordinator, receiver, operator or auditor; ``program`` the receiving program a
    receiver token speaks for (null for the other roles). ``label`` is the actor the audit trail names, unique among
    unrevoked tokens (a partial unique index, so concurrent creations cannot both take it)."""

    __tablename__ = "api_token"
    __table_args__ = (
        Index("uq_api_token_active_label", "label", unique=True, sqlite_where=_ACTIVE, postgresql_where=_ACTIVE),
    )

    id: str = Field(primary_key=True)
    label: str
    role: str
    program: str | None = None
    secret_sha256: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiRequestRecord(SQLModel, table=True):
    """One request sent with an ``Idempotency-Key``: the key is the token's own (the primary key is both), the
    digest says what was asked, and once finished ``status_code`` and ``body`` are the response to replay
    (``status_code`` is null while the request runs)."""

    __tablename__ = "api_request"
    __table_args__ = (fk(["token_id"], ["api_token.id"]), Index("ix_api_request_created", "created_at"))

    token_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    digest: str
    status_code: int | None = None
    body: Any = Field(default=None, sa_type=JSON, nullable=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
