"""Bearer tokens for the HTTP API: issued by an operator (``carepath token create``), checked on every request.

A token reads ``cpt_<8 hex>_<secret>``. The hex part is the row's id (``tok-<8 hex>``), so checking a token is one
read by primary key and a constant-time comparison of the secret's sha256 with the stored one; the secret itself
is printed once and never stored or logged. The role says what a token may do (the HTTP layer enforces it):

- ``coordinator``: everything about this store's episodes;
- ``receiver``: only the handoffs addressed to its ``program``, never person ids;
- ``operator``: read-only, no person ids;
- ``auditor``: the accounting of disclosures.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from engine import store
from engine.app import inputs
from engine.app.access import Principal
from engine.app.context import App
from engine.errors import CarepathError, InvalidInput

__all__ = [
    "LABEL_MAX",
    "PREFIX",
    "ROLES",
    "TOUCH_EVERY",
    "Principal",
    "TokenInfo",
    "create_token",
    "list_tokens",
    "revoke_token",
    "verify_token",
]

ROLES = ("coordinator", "receiver", "operator", "auditor")
#: What every token starts with, so a leaked one is recognisable (secret scanners, logs).
PREFIX = "cpt_"
LABEL_MAX = 80
#: ``last_used_at`` is written at most this often per token, so checking a token is a read, not a write.
TOUCH_EVERY = timedelta(minutes=1)

_ID = re.compile(r"tok-([0-9a-f]{8})")
_TOKEN = re.compile(r"cpt_([0-9a-f]{8})_([A-Za-z0-9_-]{20,100})")
_UNKNOWN = hashlib.sha256(b"no such token").hexdigest()  # compared against when the id is unknown, to take as long


@dataclass(frozen=True)
class TokenInfo:
    """A token as people see it: never its secret or hash."""

    id: str
    label: str
    role: str
    program: str | None
    created_at: datetime
    revoked_at: datetime | None


def create_token(app: App, role: str, *, program: str | None = None, label: str | None = None) -> tuple[TokenInfo, str]:
    """Issue a token; returns it as people see it, and the bearer text to hand over (shown once, never stored).

    A ``receiver`` token needs ``program`` (the receiving program it speaks for), the other roles must not have one;
    ``label`` (default ``<role>-<id>``) is unique among unrevoked tokens. A refusal changes nothing.
    """
    role = _check_role(role)
    if role == "receiver":
        if program is None:
            raise InvalidInput("program", "a receiver token needs --program: the receiving program it speaks for")
        program = _check_name("program", program, inputs.NAME_MAX)
    elif program is not None:
        raise InvalidInput("program", f"names the receiving program and is for receiver tokens, not {role} tokens")
    if label is not None:
        label = _check_label(label)
    secret = secrets.token_urlsafe(32)
    now = app.clock.now()
    with store.session_scope(app.engine) as session:
        hex_id = secrets.token_hex(4)
        while store.get_api_token(session, f"tok-{hex_id}") is not None:
            hex_id = secrets.token_hex(4)
        record = store.ApiTokenRecord(
            id=f"tok-{hex_id}",
            label=label or f"{role}-tok-{hex_id}",
            role=role,
            program=program,
            secret_sha256=_sha256(secret),
            created_at=now,
        )
        store.add_api_token(session, record)
        detail = {"id": record.id, "label": record.label, "role": role, "program": program}
        store.audit(session, None, now, "carepath", "token.created", detail)
    return _info(record), f"{PREFIX}{hex_id}_{secret}"


def list_tokens(app: App) -> list[TokenInfo]:
    """Every token, revoked ones included, newest first."""
    with Session(app.engine) as session:
        return [_info(r) for r in store.api_tokens(session)]


def revoke_token(app: App, token_id_or_label: str) -> TokenInfo:
    """Revoke a token by id or label: requests bearing it are refused from now on. Refused, changing nothing, for
    an unknown token or one revoked already (:class:`~engine.errors.EventRejected`)."""
    name = inputs.check_text("token", token_id_or_label, limit=LABEL_MAX, one_line=True)
    now = app.clock.now()
    with store.session_scope(app.engine) as session:
        record = store.revoke_api_token(session, name, now)
        store.audit(session, None, now, "carepath", "token.revoked", {"id": record.id, "label": record.label})
    return _info(record)


def verify_token(app: App, bearer: str) -> Principal | None:
    """Who ``bearer`` (the token text, without ``Bearer``) belongs to, or None for anything wrong with it:
    malformed, unknown, revoked or a wrong secret. It never raises for a bad token and never logs one; a store that
    cannot be read still raises (an outage is not a wrong token)."""
    match = _TOKEN.fullmatch(bearer) if isinstance(bearer, str) else None
    if match is None:
        return None
    token_id, secret = f"tok-{match.group(1)}", match.group(2)
    with Session(app.engine) as session:
        record = store.get_api_token(session, token_id)
    same = hmac.compare_digest(_sha256(secret), record.secret_sha256 if record is not None else _UNKNOWN)
    if record is None or not same or record.revoked_at is not None:
        return None
    _touch(app, record)
    return Principal(token_id=record.id, label=record.label, role=record.role, program=record.program)


def _touch(app: App, record: store.ApiTokenRecord) -> None:
    """Note when the token was last used, at most once per :data:`TOUCH_EVERY`; best effort (a busy store skips)."""
    now = app.clock.now()
    if record.last_used_at is not None and now - record.last_used_at < TOUCH_EVERY:
        return
    try:
        with store.session_scope(app.engine) as session:
            store.touch_api_token(session, record.id, now, TOUCH_EVERY)
    except CarepathError:
        pass


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _info(record: store.ApiTokenRecord) -> TokenInfo:
    return TokenInfo(
        id=record.id,
        label=record.label,
        role=record.role,
        program=record.program,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
    )


def _check_role(role: object) -> str:
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidInput("role", f"is not one of {', '.join(ROLES)}", role)
    return role


def _check_name(field: str, value: object, limit: int) -> str:
    """One line of printable text, without spaces around it (they would never match what is compared with it)."""
    text = inputs.check_text(field, value, limit=limit, one_line=True)
    if text != text.strip():
        raise InvalidInput(field, "starts or ends with a space", text)
    return text


def _check_label(label: object) -> str:
    text = _check_name("label", label, LABEL_MAX)
    if _ID.fullmatch(text):
        raise InvalidInput("label", "looks like a token id; a label must not, so `token revoke` is unambiguous", text)
    return text
